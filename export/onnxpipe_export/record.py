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
