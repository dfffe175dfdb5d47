"""Refuse, before anything is exported, a checkpoint that lacks what a retrieval task reads: a masked-LM head for
sparse-embedding, BGE-M3's head files for hybrid-embedding, a ColBERT projection for multi-vector-embedding. Without
this, transformers would draw a missing head at random and the export would fail later with a puzzling message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onnxpipe.text.bge_m3 import HEAD_FILES

from .errors import UnsupportedTaskError


def check_retrieval_source(task: str, source: Path, config: dict[str, Any]) -> None:
    """UnsupportedTaskError naming what the checkpoint at `source` lacks for `task` (other tasks pass)."""
    architectures = [str(a) for a in config.get("architectures") or []]
    if task == "sparse-embedding" and not any(a.endswith("ForMaskedLM") for a in architectures):
        raise UnsupportedTaskError(
            f"{source} is a {architectures or 'model'} checkpoint without a masked-LM head, and sparse-embedding (SPLADE) "
            "reads the masked-LM logits. Export a *ForMaskedLM checkpoint (a SPLADE model), or use --task feature-extraction."
        )
    if task == "hybrid-embedding":
        missing = [name for name in HEAD_FILES.values()
                   if not (source / name).is_file() and not (source / name.replace(".safetensors", ".pt")).is_file()]
        if missing:
            raise UnsupportedTaskError(
                f"{source} has no {' or '.join(n.replace('.safetensors', '.pt') for n in missing)}: hybrid-embedding "
                "exports BGE-M3, whose sparse and ColBERT heads lie beside the encoder. Use --task feature-extraction for "
                "the dense vectors alone."
            )
    if task == "multi-vector-embedding" and not (source / "modules.json").is_file():
        raise UnsupportedTaskError(
            f"{source} has no modules.json: multi-vector-embedding exports ColBERT models in PyLate's layout (a "
            "Transformer and its Dense projection). Use --task feature-extraction for plain token vectors."
        )
