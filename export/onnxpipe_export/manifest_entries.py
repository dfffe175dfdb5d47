"""The manifest (`onnxpipe.json`) entries that describe what an export wrote: files with their checksums,
signatures, quantization and parity figures (one graph, or every component of a multi-graph export), support
files, the source checkpoint, the stored validation references (validation.npz; quality.npz for generation) and the
optimization block of the cache graphs.

The graph, generation and Whisper export paths all build their manifests from these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from onnxpipe.cpu import this_cpu
from onnxpipe.manifest import sha256_file, variant_filename
from onnxpipe.quality import QUALITY_NAME, QualityText, quality_acceptance, save_quality_references
from onnxpipe.validation import REFERENCES_NAME, acceptance, save_references

from .onnx_files import side_files, signature
from .validate import comparison_of


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


def component_entries(
    staging: Path,
    dtypes: Sequence[str],
    components: dict[str, str],
    quantization: Callable[[str, str], Optional[dict[str, Any]]],
    validations: dict[str, Any],
) -> dict[str, Any]:
    """The manifest's `files` entries of every component in every dtype, fp32 first; `quantization(dtype, name)`
    gives a file's quantization settings."""
    files: dict[str, Any] = {}
    for dtype in ["fp32", *(d for d in dtypes if d != "fp32")]:
        for role, stem in components.items():
            name = variant_filename(dtype, stem)
            entry = onnx_file_entry(staging / name, dtype, quantization(dtype, name), validations.get(dtype))
            entry["component"] = role
            files[name] = entry
    return files


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


def optimization_entry(reason: str, tied: int) -> dict[str, Any]:
    """The manifest's `optimization` block of a generation or Whisper export: no fusion (why), and the tied-head
    rewrite (tied_weights.py). The graph path's block is optimize.Fusion.manifest_entry()."""
    entry: dict[str, Any] = {"fusion": False, "reason": reason}
    if tied:
        entry["tied_lm_head"] = (
            f"{tied} MatMul(x, Transpose(embedding)) written as FusedMatMul(transB=1) in the fp32 graphs, so "
            "onnxruntime keeps no transposed copy of the embedding (int8 / q4 / fp16 keep the MatMul)"
        )
    return entry


def with_acceptance(figures: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """A file's validation figures plus the bound `onnxpipe check` holds them to on other machines."""
    return None if figures is None else {**figures, "acceptance": acceptance(figures)}


def stored_validation(folder: Path, recipe: Any, choice: Any) -> dict[str, Any]:
    """Write the validation inputs and torch's outputs to the folder (validation.npz) and return the manifest's
    `validation` block: what the inputs were, how outputs are compared, the references file and its sha256, and
    the CPU the figures were measured on (int8 figures depend on it)."""
    path = save_references(folder / REFERENCES_NAME, [b.feeds for b in choice.samples.batches], choice.reference)
    return {
        "inputs": choice.samples.description,
        "comparison": comparison_of(recipe).manifest_entry(),
        "references": {"file": REFERENCES_NAME, **file_info(path)},
        "measured_on": this_cpu().manifest_entry(),
    }


def with_quality_acceptance(figures: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """A variant's teacher-forced quality figures plus the bounds `onnxpipe check` holds them to elsewhere."""
    return None if figures is None else {**figures, "acceptance": quality_acceptance(figures)}


def stored_quality(folder: Path, texts: Sequence[QualityText], details: dict[str, Any]) -> dict[str, Any]:
    """Write the quality texts' ids and torch's scores to the folder (quality.npz) and return the manifest's
    `quality` block: `details` (what the texts were, thresholds), each text's scored positions, the references
    file and its sha256, and the CPU the figures were measured on."""
    path = save_quality_references(folder / QUALITY_NAME, texts)
    return {
        **details,
        "texts": {text.name: {"tokens": text.tokens} for text in texts},
        "references": {"file": QUALITY_NAME, **file_info(path)},
        "measured_on": this_cpu().manifest_entry(),
    }
