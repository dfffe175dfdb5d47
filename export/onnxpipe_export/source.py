"""Step 1: resolve the checkpoint to export, a local folder or a hub id, to a folder on disk."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import ExportOptionError, SourceNotFoundError, first_line

# never needed to export with torch: other frameworks' weights and existing ONNX files
HUB_IGNORE: tuple[str, ...] = (
    "*.onnx", "*.onnx_data", "*.onnx.data", "onnx/*", "openvino/*", "coreml/*",
    "*.h5", "*.msgpack", "*.ot", "*.tflite", "*.mlmodel", "*.gguf",
)
TORCH_BIN: tuple[str, ...] = ("*.bin", "*.bin.index.json", "*.pt", "*.pth")


@dataclass(frozen=True)
class Source:
    """A checkpoint folder on disk and where it came from."""

    path: Path
    model: str  # the hub id, or the folder's absolute path
    revision: Optional[str]  # the hub commit hash; None for a local folder
    config: dict[str, Any] = field(repr=False)


def _read_config(folder: Path) -> dict[str, Any]:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise SourceNotFoundError(
            f"{str(folder)!r} has no config.json, so it is not a transformers checkpoint folder; "
            "pass a folder written by save_pretrained() or a hub id."
        )
    try:
        return json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceNotFoundError(f"{config_path} is not valid JSON ({exc}).") from exc


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~", "\\")) or model.count("/") > 1 or "\\" in model or os.path.isabs(model)


def _download(repo_id: str, revision: Optional[str]) -> Path:
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id, revision=revision, ignore_patterns=[*HUB_IGNORE, *TORCH_BIN]))
        if not any(folder.glob("*.safetensors")):  # older checkpoints carry only pytorch_model.bin
            folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(TORCH_BIN)))
    except Exception as exc:  # offline, not cached, gated, misspelled: huggingface_hub has many kinds
        at = f" at revision {revision!r}" if revision else ""
        raise SourceNotFoundError(
            f"Cannot get {repo_id!r}{at}: it is not a local folder, and downloading it from the Hugging Face hub "
            f"failed ({first_line(exc)}). Check the id and your connection, or pass a local folder."
        ) from exc
    return folder


def resolve_source(model: str | os.PathLike[str], revision: Optional[str] = None) -> Source:
    """Find the checkpoint: a local folder with config.json, or a hub id downloaded (or read from the cache)."""
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise SourceNotFoundError(f"{text!r} is a file; pass a checkpoint folder (with config.json) or a hub id.")
        if revision is not None:
            raise ExportOptionError(f"revision={revision!r} applies to hub ids; {text!r} is a local folder.")
        folder = path.resolve()
        return Source(path=folder, model=str(folder), revision=None, config=_read_config(folder))
    if _looks_like_path(text):
        raise SourceNotFoundError(f"Checkpoint folder {text!r} does not exist.")
    folder = _download(text, revision)
    return Source(path=folder, model=text, revision=folder.name, config=_read_config(folder))
