"""A model folder: its manifest, config.json, tokenizer files and ONNX variants (fp32 / int8 / fp16 / q4).

Reads onnxpipe exports (with `onnxpipe.json`), plain optimum exports (`model.onnx` at the top) and
transformers.js-style repos (`onnx/model_quantized.onnx` ...). Hub ids are fetched with huggingface_hub.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from onnxpipe import hub, verified
from onnxpipe.errors import IntegrityError, MissingModelFileError, ModelNotFoundError
from onnxpipe.manifest import dtype_of_filename, read_manifest, sha256_file
from onnxpipe.registry import normalize_task, task_from_architectures

ONNX_SUBFOLDERS = ("", "onnx")

# spellings users pass for a dtype -> the name onnxpipe uses
DTYPE_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32",
    "int8": "int8", "q8": "int8", "quantized": "int8", "qint8": "int8",
    "uint8": "uint8", "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "q4": "q4", "int4": "q4", "q4f16": "q4f16", "bnb4": "bnb4",
}

# preference order when no dtype is asked for and the manifest names no default
DEVICE_PREFERENCE = {
    "cpu": ("int8", "uint8", "fp32", "q4", "fp16", "q4f16", "bnb4"),
    "cuda": ("fp16", "fp32", "int8", "uint8", "q4f16", "q4", "bnb4"),
}


def normalize_dtype(dtype: str) -> str:
    """Map a dtype spelling ('float16', 'q8', ...) to onnxpipe's name; raise on unknown ones."""
    key = str(dtype).strip().lower()
    if key not in DTYPE_ALIASES:
        raise MissingModelFileError(
            f"Unknown dtype {dtype!r}. Use one of: {', '.join(sorted(set(DTYPE_ALIASES.values())))}."
        )
    return DTYPE_ALIASES[key]


def _looks_like_path(model: str) -> bool:
    return (
        model.startswith((".", "/", "~")) or "\\" in model or model.endswith("/") or model.count("/") > 1
        or os.sep in model.replace("/", "") or model == ""
    )


@dataclass(frozen=True)
class ModelFolder:
    """A local model folder (or a hub snapshot of one) and what it holds."""

    path: Path
    manifest: Optional[dict[str, Any]]
    config: dict[str, Any]
    repo_id: Optional[str] = None
    revision: Optional[str] = None
    remote_onnx: tuple[str, ...] = field(default=())

    @classmethod
    def open(cls, model: Union[str, os.PathLike[str], ModelFolder], revision: Optional[str] = None) -> ModelFolder:
        """Open a folder path or a hub id; a clear ModelNotFoundError when neither exists."""
        if isinstance(model, ModelFolder):
            return model
        if not isinstance(model, (str, os.PathLike)):
            raise ModelNotFoundError(f"model must be a folder path or a hub id string, got {type(model).__name__}: {model!r}")
        text = os.fspath(model)
        path = Path(text).expanduser()
        if path.exists():
            if not path.is_dir():
                raise ModelNotFoundError(f"model={text!r} is a file; pass the folder that holds it and its config.json.")
            return cls._from_dir(path.resolve())
        if _looks_like_path(text):
            raise ModelNotFoundError(
                f"Model folder {text!r} does not exist. Export one with `onnxpipe export CHECKPOINT --task TASK --output {text}`."
            )
        snapshot = hub.download_metadata(text, revision)
        folder = cls._from_dir(snapshot, repo_id=text, revision=revision)
        remote = tuple(hub.list_onnx_files(text, revision))
        return cls(folder.path, folder.manifest, folder.config, text, revision, remote)

    @classmethod
    def _from_dir(cls, path: Path, repo_id: Optional[str] = None, revision: Optional[str] = None) -> ModelFolder:
        manifest = read_manifest(path)
        config_path = path / "config.json"
        if not config_path.is_file():
            raise MissingModelFileError(
                f"{path} has no config.json. An onnxpipe, optimum or transformers.js model folder holds one; "
                "re-export the model with `onnxpipe export`."
            )
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MissingModelFileError(f"{config_path} is not valid JSON ({exc}); re-export the model.") from exc
        return cls(path, manifest, config, repo_id, revision)

    @property
    def task(self) -> Optional[str]:
        """The task the manifest records, else the one config.json's architectures imply, else None."""
        if self.manifest and self.manifest.get("task"):
            return normalize_task(self.manifest["task"])
        return task_from_architectures(self.config.get("architectures"))

    def read_json(self, name: str) -> dict[str, Any]:
        """A JSON file of the folder, or {} when absent."""
        path = self.path / name
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MissingModelFileError(f"{path} is not valid JSON ({exc}); restore it or re-export the model.") from exc

    def require(self, name: str, why: str) -> Path:
        """The path of a file the pipeline cannot run without; MissingModelFileError saying why when absent."""
        path = self.path / name
        if not path.is_file():
            raise MissingModelFileError(f"{self.path} has no {name}, which {why}.")
        return path

    def variants(self, stem: str = "model") -> dict[str, str]:
        """dtype -> relative path of each ONNX variant of `stem` the folder holds (or the hub repo offers)."""
        found: dict[str, str] = {}
        listed = [rel for rel, entry in (self.manifest or {}).get("files", {}).items() if entry.get("dtype")]
        local = [
            f"{sub}/{name}".lstrip("/")
            for sub in ONNX_SUBFOLDERS
            if (self.path / sub).is_dir()
            for name in sorted(os.listdir(self.path / sub))
        ]
        for rel in [*listed, *local, *self.remote_onnx]:
            dtype = dtype_of_filename(Path(rel).name, stem)
            if dtype is not None and (rel in self.remote_onnx or (self.path / rel).is_file()):
                found.setdefault(dtype, rel)
        return found

    def default_dtype(self, device_kind: str, stem: str = "model") -> Optional[str]:
        """The manifest's default dtype when its file exists, else the best variant for the device."""
        present = self.variants(stem)
        wanted = (self.manifest or {}).get("default_dtype")
        if wanted in present:
            return wanted
        for dtype in DEVICE_PREFERENCE.get(device_kind, DEVICE_PREFERENCE["cpu"]):
            if dtype in present:
                return dtype
        return None

    def onnx_file(self, dtype: Optional[str], device_kind: str = "cpu", stem: str = "model") -> Path:
        """The local path of the ONNX variant to run, checked against the manifest's sha256."""
        present = self.variants(stem)
        if not present:
            raise MissingModelFileError(
                f"{self.path} holds no ONNX file named {stem}*.onnx (looked in {', '.join(s or '.' for s in ONNX_SUBFOLDERS)}). "
                f"Export the checkpoint with `onnxpipe export CHECKPOINT --task TASK --output {self.path}`."
            )
        chosen = normalize_dtype(dtype) if dtype is not None else self.default_dtype(device_kind, stem)
        if chosen not in present:
            raise MissingModelFileError(
                f"{self.path} has no {chosen} variant of {stem}. Present: "
                f"{', '.join(f'{d} ({p})' for d, p in sorted(present.items()))}. "
                f"Pass one of those as dtype=, or export it with `onnxpipe export ... --dtype {chosen}`."
            )
        rel = present[chosen]
        path = self.path / rel
        if not path.is_file() and self.repo_id:
            path = hub.download_file(self.repo_id, rel, self.revision)
        self.verify(rel, path)
        return path

    def verify(self, rel: str, path: Path) -> None:
        """Raise IntegrityError when the manifest records a sha256 for `rel` that the file does not match."""
        entry = (self.manifest or {}).get("files", {}).get(rel)
        if not entry or "sha256" not in entry:
            return
        if "size" in entry and path.stat().st_size != entry["size"]:
            actual = f"size {path.stat().st_size} bytes, manifest says {entry['size']}"
        elif verified.is_verified(path, entry["sha256"]):
            return
        else:
            digest = sha256_file(path)
            if digest == entry["sha256"]:
                verified.remember(path, digest)
                return
            actual = f"sha256 {digest[:16]}..., manifest says {entry['sha256'][:16]}..."
        raise IntegrityError(
            f"{path} does not match onnxpipe.json ({actual}): the file was changed or damaged after export. "
            "Re-export the model, or restore the file."
        )
