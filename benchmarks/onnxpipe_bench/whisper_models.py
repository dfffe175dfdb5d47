"""A whisper-tiny-size random-weight checkpoint, built offline: openai/whisper-tiny's configuration (d_model 384,
4 + 4 layers, 6 heads, ffn 1536, vocab 51865, 80 mel bins) with a WhisperProcessor and a hub-style
generation_config.json that the transformers and onnxpipe Whisper pipelines both accept.

The real vocabulary is unreachable, so the tokenizer has the real one's layout: a byte-level BPE trained on the
harness passage and padded with fillers to 50257 text tokens (as the gpt2 row's), then Whisper's specials at the
real ids (<|endoftext|> 50257, <|startoftranscript|> 50258, the 99 languages of the v1 models, <|translate|>,
<|transcribe|>, <|startoflm|>, <|startofprev|>, <|nocaptions|>, <|notimestamps|> 50363) and the 1501 timestamp
tokens <|0.00|> .. <|30.00|>: 51865 ids, every one of which decodes. Speed does not depend on weight values.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .generation_models import byte_bpe

TEXT_TOKENS = 50257  # the multilingual Whisper BPE's text vocabulary: <|endoftext|> comes right after it
VOCAB_SIZE = 51865
TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|> in 0.02 s steps
# openai/whisper-tiny's suppress_tokens are punctuation and symbol tokens; these characters stand for them here
SUPPRESSED_CHARS = '"#()*+/:;<=>@[\\]^_`{|}~'


def languages() -> list[str]:
    """The 99 language codes of the v1 Whisper models, in token order (transformers' table minus large-v3's "yue")."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return [code for code in LANGUAGES if code != "yue"][:99]


def special_tokens() -> list[str]:
    """Whisper's special tokens after the text vocabulary, in Whisper's order (timestamps excluded)."""
    return [
        "<|endoftext|>", "<|startoftranscript|>", *(f"<|{code}|>" for code in languages()), "<|translate|>",
        "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>",
    ]


def whisper_tokenizer(work: Path) -> Any:
    """A WhisperTokenizerFast of VOCAB_SIZE ids with Whisper's specials and timestamps at the real ids."""
    from tokenizers import Tokenizer
    from transformers import AddedToken, WhisperTokenizerFast

    vocab, merges = byte_bpe(TEXT_TOKENS, [], work)
    raw = Tokenizer.from_file(str(_tokenizer_json(vocab, merges, work)))
    raw.add_special_tokens(special_tokens())
    raw.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", special=False, normalized=False) for i in range(TIMESTAMPS)])
    tok = WhisperTokenizerFast(
        tokenizer_object=raw, unk_token="<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>",
        pad_token="<|endoftext|>", add_prefix_space=False, additional_special_tokens=special_tokens(),
    )
    tok.model_max_length = 448
    if len(tok) != VOCAB_SIZE or tok.convert_tokens_to_ids("<|notimestamps|>") != 50363:
        raise RuntimeError(f"the whisper-tiny tokenizer came out with {len(tok)} ids, not {VOCAB_SIZE}")
    return tok


def _tokenizer_json(vocab: Path, merges: Path, work: Path) -> Path:
    """tokenizer.json of the byte-level BPE in vocab.json + merges.txt."""
    from tokenizers import ByteLevelBPETokenizer

    path = work / "bpe-tokenizer.json"
    ByteLevelBPETokenizer(str(vocab), str(merges), add_prefix_space=False).save(str(path))
    return path


def generation_config(tok: Any) -> dict[str, Any]:
    """openai/whisper-tiny's generation_config.json fields, on this tokenizer's ids (the same ids as the real one)."""
    ids = {t: tok.convert_tokens_to_ids(t) for t in special_tokens()}
    eot = ids["<|endoftext|>"]
    vocab = tok.get_vocab()
    symbols = sorted(vocab[c] for c in SUPPRESSED_CHARS if c in vocab)
    return {
        "decoder_start_token_id": ids["<|startoftranscript|>"],
        "bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot,
        "max_length": 448,
        "begin_suppress_tokens": [tok.convert_tokens_to_ids("Ġ"), eot],
        "suppress_tokens": [*symbols, ids["<|translate|>"], ids["<|transcribe|>"], ids["<|startoflm|>"],
                            ids["<|startofprev|>"], ids["<|nocaptions|>"]],
        # as the real multilingual checkpoint: language left to detection, task transcribe
        "forced_decoder_ids": [[1, None], [2, ids["<|transcribe|>"]]],
        "lang_to_id": {f"<|{code}|>": ids[f"<|{code}|>"] for code in languages()},
        "task_to_id": {"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        "no_timestamps_token_id": ids["<|notimestamps|>"],
        "prev_sot_token_id": ids["<|startofprev|>"],
        "is_multilingual": True,
        "max_initial_timestamp_index": 50,
        "return_timestamps": False,
    }


def whisper_tiny(folder: Path) -> tuple[Any, Any]:
    """openai/whisper-tiny's shape with random weights and its processor; the model carries the hub-style
    generation config, so save_pretrained writes it as generation_config.json."""
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        tok = whisper_tokenizer(Path(tmp))
    gen = generation_config(tok)
    eot = gen["eos_token_id"]
    config = transformers.WhisperConfig(
        vocab_size=VOCAB_SIZE, num_mel_bins=80, d_model=384, encoder_layers=4, decoder_layers=4,
        encoder_attention_heads=6, decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536,
        max_source_positions=1500, max_target_positions=448, decoder_start_token_id=gen["decoder_start_token_id"],
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, begin_suppress_tokens=None, suppress_tokens=None,
        architectures=["WhisperForConditionalGeneration"],
    )
    model = transformers.WhisperForConditionalGeneration(config)
    model.generation_config = transformers.GenerationConfig(**gen)
    extractor = transformers.WhisperFeatureExtractor(feature_size=80, sampling_rate=16000)
    return model, transformers.WhisperProcessor(feature_extractor=extractor, tokenizer=tok)
