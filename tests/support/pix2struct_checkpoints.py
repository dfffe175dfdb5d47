"""Offline factory of a tiny random Pix2Struct captioner (image-to-text, as google/pix2struct-textcaps-base).

A T5-style SentencePiece tokenizer (pad 0 = decoder start, eos 1), a 2-layer vision encoder over 4x4 patches
(max_patches 24, so pictures are resized and padded as in the real checkpoints) and a 2-layer text decoder.
Weights are drawn under a fixed seed with the init scale below, picked by looking at greedy captions of
:func:`pictures`: every picture gets its own caption (tests/tasks/test_image_to_text_pix2struct.py checks it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from support.generation_tokenizers import build_tokenizer
from support.vision_checkpoints import picture

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PATCH = 4
MAX_PATCHES = 24
SEED = 0
INIT = 1.0  # initializer_factor of both towers


def build_pix2struct_checkpoint(folder: Path, *, is_vqa: bool = False) -> Path:
    """Build the tiny Pix2Struct captioner into `folder`: config, weights, generation config, tokenizer and
    preprocessor_config.json (`is_vqa` as the VQA checkpoints set it). Deterministic."""
    import torch
    import transformers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer("t5", folder)
    text = transformers.Pix2StructTextConfig(
        vocab_size=len(tok), hidden_size=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, initializer_factor=INIT,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id,
    )
    vision = transformers.Pix2StructVisionConfig(
        hidden_size=32, patch_embed_hidden_size=3 * PATCH * PATCH, d_ff=64, d_kv=16, num_hidden_layers=2, num_attention_heads=2,
        patch_size=PATCH, seq_len=MAX_PATCHES, initializer_factor=INIT,
    )
    config = transformers.Pix2StructConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), is_vqa=is_vqa,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = transformers.Pix2StructForConditionalGeneration(config).eval()
    model.generation_config = transformers.GenerationConfig.from_model_config(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    transformers.Pix2StructImageProcessor(
        patch_size={"height": PATCH, "width": PATCH}, max_patches=MAX_PATCHES, is_vqa=is_vqa
    ).save_pretrained(str(folder))
    return folder


def pictures(count: int = 4) -> list[Any]:
    """`count` different PIL pictures of different sizes and aspect ratios."""
    from PIL import Image

    sizes = [(40, 50), (30, 70), (64, 24), (33, 33), (90, 60), (17, 45)]
    return [Image.fromarray(picture(h, w, seed=i)) for i, (h, w) in enumerate(sizes[:count])]
