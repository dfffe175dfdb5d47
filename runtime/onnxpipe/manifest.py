"""The model folder manifest `onnxpipe.json` and the ONNX file naming both halves agree on.

File names follow transformers.js conventions so folders are interchangeable:
`model.onnx` (fp32), `model_quantized.onnx` (int8), `model_fp16.onnx`, `model_q4.onnx`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

from onnxpipe.errors import CorruptModelError

MANIFEST_NAME = "onnxpipe.json"
FORMAT_VERSION = 1

# dtype -> file-name suffix after the stem ("model" -> "model_quantized.onnx")
DTYPE_SUFFIXES: dict[str, str] = {
    "fp32": "",
    "int8": "_quantized",
    "fp16": "_fp16",
    "q4": "_q4",
}
# other suffixes transformers.js repos use, read but never written
EXTRA_SUFFIXES: dict[str, str] = {
    "_int8": "int8",
    "_uint8": "uint8",
    "_q4f16": "q4f16",
    "_bnb4": "bnb4",
}
DTYPES: tuple[str, ...] = tuple(DTYPE_SUFFIXES)


def variant_filename(dtype: str, stem: str = "model") -> str:
    """The file name a dtype variant of `stem` gets, e.g. ('int8', 'model') -> 'model_quantized.onnx'."""
    if dtype not in DTYPE_SUFFIXES:
        raise ValueError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}.")
    return f"{stem}{DTYPE_SUFFIXES[dtype]}.onnx"


def dtype_of_filename(name: str, stem: str = "model") -> Optional[str]:
    """The dtype a file name stands for under the naming conventions, or None if it is not a variant of `stem`."""
    if not name.endswith(".onnx") or not name.startswith(stem):
        return None
    suffix = name[len(stem) : -len(".onnx")]
    for dtype, known in DTYPE_SUFFIXES.items():
        if suffix == known:
            return dtype
    return EXTRA_SUFFIXES.get(suffix)


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path) -> Optional[dict[str, Any]]:
    """The parsed manifest of a folder, or None when it has none; a clear error when it is unreadable."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CorruptModelError(f"{path} is not valid JSON ({exc}); re-export the model with `onnxpipe export`.") from exc
    if not isinstance(data, dict):
        raise CorruptModelError(f"{path} holds a JSON {type(data).__name__}, not the manifest's object; re-export the model.")
    for key, kind in (("files", dict), ("task", str)):
        if key in data and data[key] is not None and not isinstance(data[key], kind):
            raise CorruptModelError(f"{path}: {key!r} must be a JSON {kind.__name__}, got {data[key]!r:.80}; re-export the model.")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CorruptModelError(
            f"{path} has format_version {version!r}; this onnxpipe reads versions up to {FORMAT_VERSION}. "
            "Upgrade onnxpipe (pip install -U onnxpipe) or re-export the model."
        )
    return data


def write_manifest(folder: Path, data: dict[str, Any]) -> Path:
    """Write `data` as the folder's manifest (format_version filled in) and return its path."""
    path = Path(folder) / MANIFEST_NAME
    payload = {"format_version": FORMAT_VERSION, **data}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
