"""What `onnxpipe check` reports (one row per file and figure, the folder's verdict, the printed table) and the one
way every checker reads a stored references file: listed in the manifest, present, and with the sha256 it lists.

Each kind of folder (single-graph tasks, generation, Whisper) has its own checker in check.py's table; they all
return a FolderCheck built from FileCheck rows, so the table, JSON and exit status are the same for every kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from onnxpipe.cpu import CpuInfo
from onnxpipe.errors import IntegrityError, MissingModelFileError
from onnxpipe.manifest import MANIFEST_NAME, sha256_file
from onnxpipe.validation import meets


@dataclass(frozen=True)
class FileCheck:
    """One figure of one ONNX file (or of one dtype's set of files): export figure, figure here, bound, verdict."""

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
    kind: str = "graph"

    @property
    def passed(self) -> bool:
        """True when every file meets its bound."""
        return all(f.passed for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready report."""
        return {
            "folder": str(self.folder),
            "kind": self.kind,
            "cpu": self.cpu.manifest_entry() | {"source": self.cpu.source, "session_config": self.cpu.session_config()},
            "export_measured_on": self.measured_on,
            "passed": self.passed,
            "files": [
                {"file": f.name, "dtype": f.dtype, "export": f.exported, "here": f.here, "bound": f.bound, "passed": f.passed}
                for f in self.files
            ],
        }


def verified_file(folder: Path, entry: Mapping[str, Any], what: str) -> Path:
    """The path of a references file the manifest lists as `entry` ({file, sha256, size}), after checking that it
    is there and unchanged; MissingModelFileError / IntegrityError name the file and the fix."""
    path = folder / str(entry["file"])
    if not path.is_file():
        raise MissingModelFileError(f"{path} is listed in {MANIFEST_NAME} but missing; restore it or re-export the model.")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise IntegrityError(
            f"{path} does not match {MANIFEST_NAME} (sha256 {digest[:16]}..., manifest says {entry['sha256'][:16]}...): "
            f"the stored {what} were changed after export; restore the file or re-export the model."
        )
    return path


def _figure(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if 1e-3 <= abs(value) <= 1 or value == 0 else f"{value:.3g}"


def format_report(report: FolderCheck) -> str:
    """The table `onnxpipe check` prints: one row per file and figure, export figure, figure here, bound, verdict."""
    measured = report.measured_on or {}
    width = max([34, *(len(f.name) for f in report.files)])
    lines = [
        f"folder: {report.folder}",
        f"this CPU: {report.cpu.describe()}",
        f"export measured on: {measured.get('class', 'unknown')} ({' '.join(measured.get('flags', [])) or 'flags not recorded'})",
        "",
        f"{'file':{width}s} {'dtype':6s} {'figure':15s} {'export':>9s} {'here':>9s} {'bound':>12s}  result",
    ]
    for f in report.files:
        key = f.bound["figure"]
        bound = f"<= {_figure(f.bound['at_most'])}" if "at_most" in f.bound else f">= {_figure(f.bound['at_least'])}"
        lines.append(
            f"{f.name:{width}s} {f.dtype:6s} {key:15s} {_figure(f.exported.get(key)):>9s} {_figure(f.here.get(key)):>9s} "
            f"{bound:>12s}  {'ok' if f.passed else 'FAILED'}"
        )
    lines.append("")
    lines.append("all files meet their bounds" if report.passed else "some files miss their bounds on this CPU")
    return "\n".join(lines)
