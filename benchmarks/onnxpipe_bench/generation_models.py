"""Real-size random-weight generation checkpoints, built offline: gpt2 (124M), a SmolLM2-135M-size Llama and
t5-small, each with a tokenizer that can decode every id the model can produce.

Speed does not depend on weight values. The tokenizers are trained on the harness passage (inputs.PASSAGE),
so prompts tokenize like English, then padded with filler tokens up to the model's vocabulary size: encoding
never produces a filler (the passage has no "<|" and no BPE merge or unigram piece builds one), yet a random
model's output ids all decode. Everything is deterministic: same files on every build.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

from .inputs import PASSAGE

LINES = [line for line in PASSAGE.strip().splitlines() if line.strip()]
BPE_TRAINED = 1000  # vocabulary the byte-level BPE learns from the passage, before fillers
UNIGRAM_TRAINED = 400


def _filler(i: int) -> str:
    return f"<|f{i}|>"


def byte_bpe(vocab_size: int, specials: list[str], folder: Path) -> tuple[Path, Path]:
    """vocab.json + merges.txt of a byte-level BPE trained on the passage, padded with fillers to `vocab_size`."""
    from tokenizers import ByteLevelBPETokenizer

    trained = ByteLevelBPETokenizer(add_prefix_space=False)
    trained.train_from_iterator(LINES, vocab_size=BPE_TRAINED, min_frequency=1, special_tokens=specials, show_progress=False)
    vocab_file, merges_file = (Path(f) for f in trained.save_model(str(folder)))
    vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
    start = len(vocab)
    vocab.update({_filler(i): i for i in range(start, vocab_size)})
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    return vocab_file, merges_file


def gpt2_tokenizer(vocab_size: int, folder: Path) -> Any:
    """A GPT2TokenizerFast: byte-level BPE with <|endoftext|> (id 0) as bos, eos and unk."""
    import transformers

    vocab, merges = byte_bpe(vocab_size, ["<|endoftext|>"], folder)
    return transformers.GPT2TokenizerFast(vocab_file=str(vocab), merges_file=str(merges), model_max_length=1024)


def smollm2_tokenizer(vocab_size: int, folder: Path) -> Any:
    """As SmolLM2-135M's: byte-level BPE with <|endoftext|> = 0 (bos, eos, unk), <|im_start|> = 1, <|im_end|> = 2."""
    import transformers

    vocab, merges = byte_bpe(vocab_size, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], folder)
    return transformers.GPT2TokenizerFast(
        vocab_file=str(vocab), merges_file=str(merges), model_max_length=8192, bos_token="<|endoftext|>",
        eos_token="<|endoftext|>", unk_token="<|endoftext|>", additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )


def t5_tokenizer(vocab_size: int, folder: Path) -> Any:
    """A T5TokenizerFast over a unigram (SentencePiece-style, Metaspace) model: <pad> = 0, </s> = 1, <unk> = 2,
    "</s>" appended to every input, fillers (score -100) up to `vocab_size`."""
    import transformers
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    # as SentencePiece's nmt_nfkc: every run of whitespace (newlines too) becomes one space
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=UNIGRAM_TRAINED, special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(LINES, trainer=trainer)
    spec = json.loads(tok.to_str())
    pieces = spec["model"]["vocab"]
    pieces += [[_filler(i), -100.0] for i in range(len(pieces), vocab_size)]
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    return transformers.T5TokenizerFast(tokenizer_object=tok, extra_ids=0, model_max_length=512,
                                        pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


# t5-small's task_specific_params (its real config.json): summarization runs 4 beams with these
T5_SMALL_TASK_PARAMS = {
    "summarization": {"early_stopping": True, "length_penalty": 2.0, "max_length": 200, "min_length": 30,
                      "no_repeat_ngram_size": 3, "num_beams": 4, "prefix": "summarize: "},
}


def _gpt2(folder: Path) -> tuple[Any, Any]:
    """openai-community/gpt2's shape: GPT2Config() defaults (124M, vocab 50257, 1024 positions)."""
    import transformers

    config = transformers.GPT2Config()
    tok = gpt2_tokenizer(config.vocab_size, folder)
    config.bos_token_id = config.eos_token_id = tok.eos_token_id
    return transformers.GPT2LMHeadModel(config), tok


def _smollm2_135m(folder: Path) -> tuple[Any, Any]:
    """HuggingFaceTB/SmolLM2-135M's shape: a Llama with hidden 576, 30 layers, 9 heads (3 kv), vocab 49152."""
    import transformers

    tok = smollm2_tokenizer(49152, folder)
    config = transformers.LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, rope_theta=100000.0, tie_word_embeddings=True, max_position_embeddings=8192,
        rms_norm_eps=1e-5, hidden_act="silu", bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        architectures=["LlamaForCausalLM"],
    )
    return transformers.LlamaForCausalLM(config), tok


def _t5_small(folder: Path) -> tuple[Any, Any]:
    """google-t5/t5-small's shape: T5Config() defaults (60M, vocab 32128) and its task_specific_params."""
    import transformers

    config = transformers.T5Config(task_specific_params=T5_SMALL_TASK_PARAMS, decoder_start_token_id=0,
                                   architectures=["T5ForConditionalGeneration"])
    tok = t5_tokenizer(config.vocab_size, folder)
    return transformers.T5ForConditionalGeneration(config), tok


GENERATION_BUILDERS: dict[str, Callable[[Path], tuple[Any, Any]]] = {
    "gpt2": _gpt2, "smollm2-135m": _smollm2_135m, "t5-small": _t5_small,
}


def build_random_generation_checkpoint(arch: str, output: Path, seed: int = 0) -> Path:
    """Save a random-weight GENERATION_BUILDERS checkpoint with its tokenizer and a generation_config.json naming
    bos / eos / pad (pad = eos where the model has none, as the pipelines then do)."""
    import torch
    import transformers

    output = Path(output)
    if (output / "config.json").is_file():
        return output
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        model, tok = GENERATION_BUILDERS[arch](Path(tmp))
    config = model.config
    pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
    start = getattr(config, "decoder_start_token_id", None)
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=pad,
        **({"decoder_start_token_id": start} if start is not None else {}),
    )
    output.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(str(output))
    tok.save_pretrained(str(output))
    return output
