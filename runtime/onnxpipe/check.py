"""`onnxpipe check FOLDER`: measure every ONNX file of an export folder again, on this machine, without torch.

The export stored its validation inputs and torch's outputs (validation.npz, sha256 in the manifest). Running each
file on them here gives the export's figures as this CPU computes them: int8 kernels differ between CPU classes
(cpu.py), so a folder validated on one machine is proven on another before it serves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from onnxpipe.cpu import CpuInfo, this_cpu
from onnxpipe.errors import IntegrityError, MissingModelFileError
from onnxpipe.manifest import MANIFEST_NAME, sha256_file
from onnxpipe.model_folder import ModelFolder
from onnxpipe.validation import (
    REFERENCES_NAME,
    Comparison,
    acceptance,
    batch_mask,
    compare,
    load_references,
    meets,
    run_file,
)


@dataclass(frozen=True)
class FileCheck:
    """One ONNX file: its figures at export and here, the bound it must meet, and whether it does."""

    name: str
    dtype: str
    exported: dict[str, Any]
    here: dict[str, Any]
    bound: dict[str, Any]

    @property
    def passed(self) -> bool:
        """Whether the figures measured here meet the bound."""
        return meets(self.here, self.bound)


@dataclass(frozen=True)
class FolderCheck:
    """Every checked file of a folder, the CPU they ran on, and the CPU the export measured on."""

    folder: Path
    cpu: CpuInfo
    measured_on: Optional[dict[str, Any]]
    files: tuple[FileCheck, ...]

    @property
    def passed(self) -> bool:
        """True when every file meets its bound."""
        return all(f.passed for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready report."""
        return {
            "folder": str(self.folder),
            "cpu": self.cpu.manifest_entry() | {"source": self.cpu.source, "session_config": self.cpu.session_config()},
            "export_measured_on": self.measured_on,
            "passed": self.passed,
            "files": [
                {"file": f.name, "dtype": f.dtype, "export": f.exported, "here": f.here, "bound": f.bound, "passed": f.passed}
                for f in self.files
            ],
        }


def _references(folder: ModelFolder) -> tuple[dict[str, Any], Path]:
    """The manifest's validation block and the verified path of its references file."""
    manifest = folder.manifest
    if manifest is None:
        raise MissingModelFileError(
            f"{folder.path} has no {MANIFEST_NAME}: `onnxpipe check` needs a folder written by `onnxpipe export`, "
            "which stores the validation inputs and torch's outputs in it."
        )
    validation = manifest.get("validation") or {}
    entry = validation.get("references")
    if not entry:
        how = f"onnxpipe export {manifest.get('source', {}).get('model', 'CHECKPOINT')} --task {manifest.get('task')} --output {folder.path}"
        kind = manifest.get("task")
        raise MissingModelFileError(
            f"{folder.path} holds no stored validation references ({REFERENCES_NAME}). Folders exported by this "
            f"version of onnxpipe for single-graph tasks carry them; re-export with `{how}` (with the same --dtype "
            f"options) to check it on this machine. Generation and Whisper folders (task {kind!r} here, if it is "
            "one of them) store none yet: their export compares generated tokens with torch."
        )
    path = folder.path / entry["file"]
    if not path.is_file():
        raise MissingModelFileError(f"{path} is listed in {MANIFEST_NAME} but missing; restore it or re-export the model.")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise IntegrityError(
            f"{path} does not match {MANIFEST_NAME} (sha256 {digest[:16]}..., manifest says {entry['sha256'][:16]}...): "
            "the stored references were changed after export; restore the file or re-export the model."
        )
    return validation, path


def check_folder(model: Union[str, Path]) -> FolderCheck:
    """Run every validated ONNX file of an export folder on its stored references, on this machine's CPU."""
    folder = ModelFolder.open(model)
    validation, path = _references(folder)
    batches, reference = load_references(path)
    comparison = Comparison.from_manifest(validation["comparison"])
    masks = [batch_mask(b) for b in batches]
    checks = []
    for rel, entry in (folder.manifest or {}).get("files", {}).items():
        exported = entry.get("validation")
        if not exported:
            continue
        onnx_path = folder.path / rel
        if not onnx_path.is_file():
            raise MissingModelFileError(f"{onnx_path} is listed in {MANIFEST_NAME} but missing; restore it or re-export.")
        folder.verify(rel, onnx_path)
        outputs = run_file(onnx_path, comparison, batches)
        here = compare(outputs, reference, masks, comparison, exported.get("tolerance"))
        bound = exported.get("acceptance") or acceptance(exported)
        checks.append(FileCheck(rel, str(entry.get("dtype")), dict(exported), here, bound))
    return FolderCheck(folder.path, this_cpu(), validation.get("measured_on"), tuple(checks))


def _figure(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if 1e-3 <= abs(value) <= 1 or value == 0 else f"{value:.3g}"


def format_report(report: FolderCheck) -> str:
    """The table `onnxpipe check` prints: one row per file, export figure, figure here, bound, verdict."""
    measured = report.measured_on or {}
    lines = [
        f"folder: {report.folder}",
        f"this CPU: {report.cpu.describe()}",
        f"export measured on: {measured.get('class', 'unknown')} ({' '.join(measured.get('flags', [])) or 'flags not recorded'})",
        "",
        f"{'file':34s} {'dtype':6s} {'figure':15s} {'export':>9s} {'here':>9s} {'bound':>12s}  result",
    ]
    for f in report.files:
        key = f.bound["figure"]
        bound = f"<= {_figure(f.bound['at_most'])}" if "at_most" in f.bound else f">= {_figure(f.bound['at_least'])}"
        lines.append(
            f"{f.name:34s} {f.dtype:6s} {key:15s} {_figure(f.exported.get(key)):>9s} {_figure(f.here.get(key)):>9s} "
            f"{bound:>12s}  {'ok' if f.passed else 'FAILED'}"
        )
    lines.append("")
    lines.append("all files meet their bounds" if report.passed else "some files miss their bounds on this CPU")
    return "\n".join(lines)


def run_check(folder: str, as_json: bool = False) -> int:
    """Print the check of `folder`; 0 when every file meets its bound, 1 otherwise."""
    report = check_folder(folder)
    print(json.dumps(report.as_dict(), indent=2) if as_json else format_report(report))
    return 0 if report.passed else 1
