"""The non-ONNX files an export folder carries: config, tokenizer, generation and sentence-transformers files."""

from __future__ import annotations

import shutil
from pathlib import Path

from onnxpipe.text.sentence_transformers_config import TRANSFORMER_CONFIG_FILES

from .bge_m3_heads import convert_head_files
from .sentence_transformers_files import copy_module_files

SUPPORT_FILES: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "source.spm",  # Marian's slow tokenizer (the runtime reads the tokenizer.json built from them)
    "target.spm",
    # sentence-transformers: module list, prompts, the Transformer module's config (max_seq_length) under the names
    # sentence-transformers tries; the modules' own folders are copied by sentence_transformers_files.py
    "modules.json",
    "config_sentence_transformers.json",
    *TRANSFORMER_CONFIG_FILES,
)


def copy_support_files(source: Path, fallback: Path, destination: Path) -> list[str]:
    """Copy the support files the checkpoint has into `destination`; return their relative names.

    Files missing from the checkpoint are taken from `fallback` (optimum's output), which holds e.g. a
    tokenizer.json converted from a slow tokenizer. A sentence-transformers checkpoint's module folders (Pooling,
    Dense with its weights as safetensors) come along too, and BGE-M3's sparse / ColBERT heads as safetensors.
    """
    copied = []
    for name in SUPPORT_FILES:
        for folder in (source, fallback):
            path = folder / name
            if path.is_file():
                target = destination / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                copied.append(name)
                break
    return copied + copy_module_files(source, destination) + convert_head_files(source, destination)
