"""Carry a sentence-transformers checkpoint's module files into an export folder, in the form the runtime reads.

`modules.json` names the modules and their folders. Each module's `config.json` is copied; a Dense layer's
weights are written as `model.safetensors` (copied, or converted from `pytorch_model.bin`, which the torch-free
runtime cannot read). The root files (modules.json, sentence_bert_config.json, config_sentence_transformers.json)
are in support.SUPPORT_FILES.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

DENSE_WEIGHTS = "model.safetensors"  # the name the runtime reads (onnxpipe.text.sentence_transformers_config)
_TORCH_WEIGHTS = "pytorch_model.bin"


def copy_module_files(source: Path, destination: Path) -> list[str]:
    """Copy the config (and Dense weights) of every module `source/modules.json` lists into `destination`; return
    the relative names written. A checkpoint without modules.json gives []."""
    modules_path = source / "modules.json"
    if not modules_path.is_file():
        return []
    modules = json.loads(modules_path.read_text(encoding="utf-8"))
    written = []
    for module in modules if isinstance(modules, list) else []:
        path = str(module.get("path", "") or "") if isinstance(module, dict) else ""
        if not path or Path(path).is_absolute() or ".." in Path(path).parts:
            continue  # the Transformer (root: the graph and support files) or a path outside the checkpoint
        folder = source / path
        names = [p.name for p in folder.iterdir() if p.is_file() and p.suffix == ".json"] if folder.is_dir() else []
        for name in sorted(names):
            target = destination / path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / name, target)
            written.append(f"{path}/{name}")
        if (folder / DENSE_WEIGHTS).is_file():
            shutil.copyfile(folder / DENSE_WEIGHTS, destination / path / DENSE_WEIGHTS)
            written.append(f"{path}/{DENSE_WEIGHTS}")
        elif (folder / _TORCH_WEIGHTS).is_file():
            _convert_torch_weights(folder / _TORCH_WEIGHTS, destination / path / DENSE_WEIGHTS)
            written.append(f"{path}/{DENSE_WEIGHTS}")
    return written


def _convert_torch_weights(source: Path, target: Path) -> None:
    """A module's pytorch_model.bin as safetensors (float tensors as float32)."""
    import torch
    from safetensors.torch import save_file

    state = torch.load(source, map_location="cpu", weights_only=True)
    tensors = {name: value.detach().float().contiguous() if value.is_floating_point() else value.contiguous()
               for name, value in state.items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target))
