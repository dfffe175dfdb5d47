"""Offline factory of tiny random VisionEncoderDecoder captioners (image-to-text) and their test pictures.

Two families, as on the hub: a ViT encoder with a GPT-2 decoder (nlpconnect/vit-gpt2-image-captioning's shape:
tied LM head, start = pad = eos = <|endoftext|>), and a TrOCR-style one: a DeiT encoder wider than its TrOCR
decoder (so the model's enc_to_dec_proj runs, as in microsoft/trocr-small-printed), a RoBERTa byte-level BPE
tokenizer, start = </s>. Weights are drawn under a fixed seed with the init scales below, picked by looking at
greedy captions of :func:`pictures`: every picture gets its own caption and captions are not one repeated token
(tests/tasks/test_image_to_text.py checks both).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from support.generation_tokenizers import build_tokenizer
from support.vision_checkpoints import picture

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ARCHS = ("vit-gpt2", "trocr")
POSITIONS = 300  # decoder positions: the pipeline's default of 256 new tokens fits
#: (encoder init, decoder init, seed, decoder cross-attention output scale) per family
SETTINGS = {"vit-gpt2": (0.2, 0.5, 0, 1.0), "trocr": (0.2, 0.5, 2, 0.3)}


def _tokenizer(arch: str, folder: Path) -> Any:
    """GPT-2's byte-level BPE, or a RobertaTokenizerFast over the same kind of files (TrOCR's tokenizer)."""
    import transformers

    if arch == "vit-gpt2":
        return build_tokenizer("gpt2", folder)
    with tempfile.TemporaryDirectory() as tmp:
        build_tokenizer("bart", Path(tmp))  # <s> <pad> </s> <unk> <mask>: RoBERTa's specials and files
        tok = transformers.RobertaTokenizerFast(
            vocab_file=str(Path(tmp) / "vocab.json"), merges_file=str(Path(tmp) / "merges.txt"), model_max_length=POSITIONS
        )
    tok.save_pretrained(str(folder))
    return tok


def _configs(arch: str, tok: Any, encoder_init: float, decoder_init: float) -> tuple[Any, Any, dict[str, int]]:
    """(encoder config, decoder config, special ids) of a tiny `arch`."""
    import transformers

    vision = dict(image_size=32, patch_size=8, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  initializer_range=encoder_init)
    if arch == "vit-gpt2":
        eos = tok.eos_token_id
        decoder = transformers.GPT2Config(
            vocab_size=len(tok), n_positions=POSITIONS, n_embd=32, n_layer=2, n_head=2, initializer_range=decoder_init,
            bos_token_id=eos, eos_token_id=eos, add_cross_attention=True, is_decoder=True,
        )
        return transformers.ViTConfig(hidden_size=32, **vision), decoder, {"decoder_start_token_id": eos, "pad_token_id": eos, "eos_token_id": eos}
    decoder = transformers.TrOCRConfig(
        vocab_size=len(tok), d_model=32, decoder_layers=2, decoder_attention_heads=2, decoder_ffn_dim=64,
        max_position_embeddings=POSITIONS, init_std=decoder_init, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id,
        use_learned_position_embeddings=True, layernorm_embedding=True,
    )
    ids = {"decoder_start_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id}
    return transformers.DeiTConfig(hidden_size=48, **vision), decoder, ids


def build_image_to_text_checkpoint(arch: str, folder: Path) -> Path:
    """Build the tiny `arch` captioner (one of :data:`ARCHS`) into `folder`: config, weights, generation config,
    tokenizer and preprocessor_config.json. Deterministic."""
    import torch
    import transformers

    if arch not in ARCHS:
        raise ValueError(f"unknown image-to-text arch {arch!r}; expected one of {ARCHS}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoder_init, decoder_init, seed, cross = SETTINGS[arch]
    tok = _tokenizer(arch, folder)
    encoder, decoder, ids = _configs(arch, tok, encoder_init, decoder_init)
    config = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    for name, value in ids.items():
        setattr(config, name, value)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.VisionEncoderDecoderModel(config=config).eval()
    with torch.no_grad():  # a weaker cross-attention keeps captions dependent on the tokens so far too
        for name, module in model.named_modules():
            if name.endswith(("crossattention.c_proj", "encoder_attn.out_proj")):
                module.weight.mul_(cross)
    model.generation_config = transformers.GenerationConfig.from_model_config(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    return folder


def pictures(count: int = 4) -> list[Any]:
    """`count` different PIL pictures of different sizes (each a gradient, a rectangle and noise)."""
    from PIL import Image

    return [Image.fromarray(picture(40 + 7 * i, 50 + 3 * i, seed=i)) for i in range(count)]
