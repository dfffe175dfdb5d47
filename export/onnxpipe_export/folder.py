"""The output folder: refuse to mix an export into unrelated files, and replace a previous export in place."""

from __future__ import annotations

import shutil
from pathlib import Path

from onnxpipe.manifest import MANIFEST_NAME, read_manifest

from .errors import OutputFolderError


def check_output(folder: Path) -> None:
    """Accept a missing folder, an empty one, or a previous onnxpipe export (which gets replaced)."""
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"Output {str(folder)!r} is a file; pass a folder path.")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST_NAME).is_file():
        raise OutputFolderError(
            f"Output folder {str(folder)!r} is not empty and holds no {MANIFEST_NAME}; "
            "pass an empty or new folder, or a folder written by a previous onnxpipe export."
        )


def check_outside_source(folder: Path, source: Path) -> None:
    """Refuse an output folder that is the checkpoint folder or lies inside it (installing would delete the source)."""
    if folder == source or source in folder.parents:
        raise OutputFolderError(f"Output {str(folder)!r} is inside the checkpoint folder; pass a folder elsewhere.")


def _previous_files(folder: Path) -> list[Path]:
    try:
        manifest = read_manifest(folder) or {}
    except ValueError as exc:
        raise OutputFolderError(f"Cannot replace the export in {str(folder)!r}: {exc}") from exc
    names: list[str] = list(manifest.get("support_files", {}))
    for name, entry in manifest.get("files", {}).items():
        names.append(name)
        names.extend(entry.get("external_data", {}) if isinstance(entry, dict) else [])
    root = folder.resolve()
    paths = [(folder / name).resolve() for name in names]
    return [p for p in paths if p.is_relative_to(root) and p != root] + [folder / MANIFEST_NAME]


def install(staging: Path, folder: Path) -> None:
    """Move every file under `staging` into `folder`, first removing the files a previous export listed."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in _previous_files(folder):
        if old.is_file():
            old.unlink()
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        target = folder / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(target))
