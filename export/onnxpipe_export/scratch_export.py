"""The frame every export path runs in (graph, generation, Whisper), and the ExportResult it returns: check the
output folder, import the export stack under a progress line, run the path's steps in a scratch folder with the
libraries quieted, then warn each quality note, print the summary and return what was written."""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from .deps import import_export_stack, require_export_dependencies
from .errors import ExportQualityWarning
from .folder import check_output
from .progress import Progress
from .quiet_libraries import silenced
from .summary import format_summary

# (output folder, scratch folder, progress, notes) -> the manifest as written
Steps = Callable[[Path, Path, Progress, list[str]], dict[str, Any]]


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: the folder, its manifest, and the ONNX files in it."""

    output: Path
    manifest: dict[str, Any]
    files: list[Path]
    warnings: tuple[str, ...] = ()
    seconds: float = field(default=0.0, compare=False)


def run_export(output: Union[str, Path], steps: int, quiet: bool, run: Steps, depth: int = 2) -> ExportResult:
    """Run `run` inside the shared frame; `steps` counts its progress steps after the import one. `depth`: calls
    between the user and this function (quality warnings point at the user's line)."""
    require_export_dependencies()
    out = Path(output).expanduser().resolve()
    check_output(out)
    started = time.perf_counter()
    notes: list[str] = []
    progress = Progress(1 + steps, Progress.wanted(quiet))
    try:
        with progress.step("import torch, transformers, optimum"), warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            import_export_stack()
        with silenced(quiet), tempfile.TemporaryDirectory(prefix="onnxpipe-export-") as tmp:
            manifest = run(out, Path(tmp), progress, notes)
    finally:
        progress.close()
    seconds = time.perf_counter() - started
    for note in notes:
        warnings.warn(note, ExportQualityWarning, stacklevel=2 + depth)
    result = ExportResult(out, manifest, [out / name for name in manifest["files"]], tuple(notes), seconds)
    if not quiet:
        print(format_summary(str(out), manifest, notes, seconds), file=sys.stdout, flush=True)
    return result
