"""Builds the manifest (`onnxpipe.json`) entries that describe what an export wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from onnxpipe.manifest import sha256_file

from .onnx_files import side_files, signature


def file_info(path: Path) -> dict[str, Any]:
    """sha256 and size in bytes of one file."""
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def onnx_file_entry(
    path: Path, dtype: str, quantization: Optional[dict[str, Any]], validation: Optional[dict[str, Any]]
) -> dict[str, Any]:
    """The manifest's `files[<name>]` entry: dtype, checksum, signature, quantization and parity figures."""
    entry: dict[str, Any] = {"dtype": dtype, **file_info(path), **signature(path)}
    entry["quantization"] = quantization
    data = side_files(path)
    if data:
        entry["external_data"] = {p.name: file_info(p) for p in data}
    entry["validation"] = validation
    return entry


def support_entries(folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """The manifest's `support_files`: sha256 and size of each copied file, keyed by relative name."""
    return {name: file_info(folder / name) for name in names}


def source_entry(model: str, revision: Optional[str], config: dict[str, Any]) -> dict[str, Any]:
    """The manifest's `source`: which checkpoint, at which commit, of which architecture."""
    return {
        "model": model,
        "revision": revision,
        "architectures": config.get("architectures") or [],
        "model_type": config.get("model_type"),
    }


def with_acceptance(figures: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """A file's validation figures plus the bound `onnxpipe check` holds them to on other machines."""
    from onnxpipe.validation import acceptance

    return None if figures is None else {**figures, "acceptance": acceptance(figures)}


def stored_validation(folder: Path, recipe: Any, choice: Any) -> dict[str, Any]:
    """Write the validation inputs and torch's outputs to the folder (validation.npz) and return the manifest's
    `validation` block: what the inputs were, how outputs are compared, the references file and its sha256, and
    the CPU the figures were measured on (int8 figures depend on it)."""
    from onnxpipe.cpu import this_cpu
    from onnxpipe.validation import REFERENCES_NAME, save_references

    from .validate import comparison_of

    path = save_references(folder / REFERENCES_NAME, [b.feeds for b in choice.samples.batches], choice.reference)
    return {
        "inputs": choice.samples.description,
        "comparison": comparison_of(recipe).manifest_entry(),
        "references": {"file": REFERENCES_NAME, **file_info(path)},
        "measured_on": this_cpu().manifest_entry(),
    }
