"""Carry BGE-M3's extra heads into an export folder as safetensors: `sparse_linear.pt` and `colbert_linear.pt`
(torch state dicts of Linear layers, beside the XLM-R checkpoint) become `sparse_linear.safetensors` and
`colbert_linear.safetensors`, which the torch-free runtime reads (onnxpipe.text.bge_m3)."""

from __future__ import annotations

import shutil
from pathlib import Path

from onnxpipe.text.bge_m3 import HEAD_FILES


def convert_head_files(source: Path, destination: Path) -> list[str]:
    """Write the head files `source` has into `destination` as safetensors (float32); return the names written."""
    written = []
    for name in HEAD_FILES.values():
        if (source / name).is_file():
            shutil.copyfile(source / name, destination / name)
            written.append(name)
            continue
        torch_file = source / name.replace(".safetensors", ".pt")
        if torch_file.is_file():
            _convert(torch_file, destination / name)
            written.append(name)
    return written


def _convert(source: Path, target: Path) -> None:
    import torch
    from safetensors.torch import save_file

    state = torch.load(source, map_location="cpu", weights_only=True)
    save_file({key: value.detach().float().contiguous() for key, value in state.items()}, str(target))
