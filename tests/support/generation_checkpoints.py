"""Offline factory of tiny random generation checkpoints (GPT-2, Llama with GQA, T5, BART, Marian).

Each builder writes a folder that `transformers.pipeline` and the export stage both load:
config.json + model.safetensors + generation_config.json + tokenizer files. Tokenizers are
trained on :data:`tiny_tokenizers.CORPUS` deterministically (generation_tokenizers.py); weights are
drawn under a fixed seed with a large init scale so greedy generation depends on the prompt, does
not stop at step 1 and is not one repeated token (tests/test_export_generation.py checks this).

Random encoder-decoders need more than a large init to stop repeating one token: their decoder's
cross-attention output is scaled down (:data:`CROSS_SCALE`), T5 and Marian get an untied LM head,
BART scales its embeddings, and the LM head is projected off the direction all decoder states share
(:func:`_center_lm_head`, measured on CORPUS). The start token (= pad for T5 / Marian) gets logit 0.
Seeds and scales were picked by looking at greedy outputs; fp32 ONNX logits stay within 3e-5 of
torch relative to their magnitude (T5's logits reach ~90 at init 2.0).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Union

from support.generation_tokenizers import CHAT_TEMPLATE, MAXLEN, build_tokenizer  # noqa: F401  (CHAT_TEMPLATE re-exported)
from support.tiny_tokenizers import CORPUS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PathLike = Union[str, "os.PathLike[str]"]

GENERATION_ARCHS = ("gpt2", "llama", "t5", "bart", "marian")
#: the pipeline task each architecture is exported for by default
ARCH_TASK: Dict[str, str] = {
    "gpt2": "text-generation",
    "llama": "text-generation",
    "t5": "text2text-generation",
    "bart": "summarization",
    "marian": "translation",
}
DECODER_ONLY = ("gpt2", "llama")

#: Prompts for generation tests: ascii, accented, CJK, emoji, short and longer.
GENERATION_PROMPTS: tuple = (
    "Hello, my dog is cute",
    "The capital of France is",
    "We met at a café in Zürich and talked about her résumé.",
    "東京は日本の首都です。",
    "I love this 😀 so much 👍",
    "Why is the sky blue? Tell me about light, the atmosphere and the colors we see at sunset over the sea.",
    "ok",
)


#: Per-architecture init scale: transformers' defaults (0.02) give near-constant outputs at this size.
INIT = {"gpt2": 0.2, "llama": 0.2, "t5": 2.0, "bart": 0.35, "marian": 0.35}
#: Encoder-decoders saved with an untied LM head. Not BART: untied, its encoder/decoder embeddings (shared
#: tensors dropped at save) would load as fresh random weights.
UNTIED = ("t5", "marian")
#: Decoder cross-attention output scale (see _weaken_cross_attention), chosen by looking at greedy outputs.
CROSS_SCALE = {"gpt2": 1.0, "llama": 1.0, "t5": 1.0, "bart": 0.3, "marian": 0.1}
BART_SCALE_EMBEDDING = True  # token embeddings x sqrt(d_model), as Marian: the decoder follows its own tokens more
SEEDS = {"gpt2": 0, "llama": 0, "t5": 2, "bart": 1, "marian": 0}


# --------------------------------------------------------------------------- models


def _config(arch: str, tok, init: float):
    """Tiny config of `arch` whose special ids match `tok`."""
    import transformers

    n = len(tok)
    if arch == "gpt2":
        eos = tok.eos_token_id
        return transformers.GPT2Config(
            vocab_size=n, n_positions=MAXLEN, n_embd=32, n_layer=2, n_head=2, initializer_range=init,
            bos_token_id=eos, eos_token_id=eos,
        )
    if arch == "llama":
        return transformers.LlamaConfig(
            vocab_size=n, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=MAXLEN, initializer_range=init,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            tie_word_embeddings=True,
        )
    if arch == "t5":
        return transformers.T5Config(
            vocab_size=n, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
            relative_attention_num_buckets=8, relative_attention_max_distance=32, initializer_factor=init,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, feed_forward_proj="relu",
            task_specific_params={
                "summarization": {"early_stopping": True, "length_penalty": 2.0, "max_length": 40,
                                  "min_length": 4, "no_repeat_ngram_size": 3, "num_beams": 4,
                                  "prefix": "summarize: "},
                "translation_en_to_de": {"early_stopping": True, "max_length": 40, "num_beams": 4,
                                         "prefix": "translate English to German: "},
                "translation_en_to_fr": {"early_stopping": True, "max_length": 40, "num_beams": 4,
                                         "prefix": "translate English to French: "},
            },
        )
    common = dict(
        vocab_size=n, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=MAXLEN,
        init_std=init, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )
    if arch == "bart":
        return transformers.BartConfig(
            scale_embedding=BART_SCALE_EMBEDDING, bos_token_id=tok.bos_token_id, decoder_start_token_id=tok.eos_token_id,
            forced_bos_token_id=tok.bos_token_id, forced_eos_token_id=tok.eos_token_id, **common,
        )
    if arch == "marian":
        return transformers.MarianConfig(
            decoder_start_token_id=tok.pad_token_id, forced_eos_token_id=tok.eos_token_id,
            decoder_vocab_size=n, share_encoder_decoder_embeddings=True, **common,
        )
    raise ValueError(f"unknown generation arch {arch!r}; expected one of {GENERATION_ARCHS}")


_MODEL_CLASS = {
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "t5": "T5ForConditionalGeneration",
    "bart": "BartForConditionalGeneration",
    "marian": "MarianMTModel",
}


def _generation_config(arch: str, config):
    """The generation_config.json a real checkpoint of this family carries (kept short for fast tests)."""
    import transformers

    gen = transformers.GenerationConfig.from_model_config(config)
    if arch == "marian":  # as Helsinki-NLP/opus-mt-*: never generate <pad>
        gen.bad_words_ids = [[config.pad_token_id]]
        gen.max_length = 40
    if arch == "bart":
        gen.max_length = 40
    return gen


def _weaken_cross_attention(model, scale: float) -> None:
    """Scale the decoder's cross-attention output projections by `scale`.

    At a large init the cross-attention output drowns the decoder's own token embeddings, so a
    random encoder-decoder repeats one token forever; a weaker cross-attention keeps the output
    dependent on both the source and the tokens generated so far.
    """
    import torch

    if scale == 1.0:
        return
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.endswith(("encoder_attn.out_proj", "EncDecAttention.o")):
                module.weight.mul_(scale)


def _center_lm_head(model, tok) -> None:
    """Remove from the LM head the direction every decoder state shares.

    A random decoder's final states share a large common component, so one token wins the argmax
    at every step. The head's rows are projected orthogonally to the mean final state, measured
    teacher-forced on :data:`CORPUS` (not the test prompts); logits then follow what varies with
    the source and the tokens so far. Deterministic (no RNG).
    """
    import torch

    head = model.get_output_embeddings()
    captured = []
    hook = head.register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
    try:
        batch = tok(list(CORPUS), padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            model(**batch, decoder_input_ids=model._shift_right(batch["input_ids"]) if hasattr(model, "_shift_right")
                  else _shift_right(batch["input_ids"], model.config))
    finally:
        hook.remove()
    states = captured[0][batch["attention_mask"].bool()].double()
    mean = states.mean(0)
    with torch.no_grad():
        w = head.weight.double()
        w = w - torch.outer(w @ mean, mean) / float(mean @ mean)
        pad = model.config.pad_token_id
        if pad is not None and pad == model.config.decoder_start_token_id:
            w[pad] = 0.0  # logit 0: a real T5 / Marian practically never generates its start (= pad) token
        head.weight.copy_(w.to(head.weight.dtype))


def _shift_right(ids, config):
    """decoder_input_ids for teacher forcing: decoder_start_token_id, then the ids but the last."""
    import torch

    start = torch.full_like(ids[:, :1], config.decoder_start_token_id)
    return torch.cat([start, ids[:, :-1]], dim=1)


def build_generation_checkpoint(
    arch: str, folder: PathLike, *, seed: Optional[int] = None, init: Optional[float] = None,
    cross_scale: Optional[float] = None,
) -> Path:
    """Build the tiny random `arch` checkpoint into `folder` (save_pretrained + tokenizer + generation_config.json).

    `arch` is one of :data:`GENERATION_ARCHS`. Deterministic: the same arguments give the same weights.
    """
    import torch
    import transformers

    if arch not in GENERATION_ARCHS:
        raise ValueError(f"unknown generation arch {arch!r}; expected one of {GENERATION_ARCHS}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(arch, folder)
    config = _config(arch, tok, INIT[arch] if init is None else init)
    config.architectures = [_MODEL_CLASS[arch]]
    if arch in UNTIED:
        # A tied LM head scores the input token's own embedding highest, so a random post-LN decoder
        # repeats its last token forever; an untied head (as T5 v1.1 has) makes a varied chain.
        config.tie_word_embeddings = False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEEDS[arch] if seed is None else seed)
        model = getattr(transformers, _MODEL_CLASS[arch])(config)
    model.eval()
    _weaken_cross_attention(model, CROSS_SCALE[arch] if cross_scale is None else cross_scale)
    if config.is_encoder_decoder:
        _center_lm_head(model, tok)
    model.generation_config = _generation_config(arch, config)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def greedy_tokens(folder: PathLike, prompts=GENERATION_PROMPTS, max_new_tokens: int = 16) -> list:
    """transformers' greedy new tokens for each prompt, one prompt at a time (for the non-degeneracy checks)."""
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    config = transformers.AutoConfig.from_pretrained(str(folder))
    cls = transformers.AutoModelForSeq2SeqLM if config.is_encoder_decoder else transformers.AutoModelForCausalLM
    model = cls.from_pretrained(str(folder)).eval()
    out = []
    for prompt in prompts:
        enc = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            ids = model.generate(
                **enc, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, min_new_tokens=0,
                pad_token_id=config.pad_token_id if config.pad_token_id is not None else config.eos_token_id,
                bad_words_ids=None, no_repeat_ngram_size=0, forced_bos_token_id=None, forced_eos_token_id=None,
            )[0].tolist()
        out.append(ids if config.is_encoder_decoder else ids[enc["input_ids"].shape[1]:])
    return out
