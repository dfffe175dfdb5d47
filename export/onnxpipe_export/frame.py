"""The frame every multi-graph export path shares (generation, Whisper): check the output folder, import the
export stack under a progress line, run the path's steps in a scratch folder with library noise silenced, then
warn each quality note, print the summary and return the ExportResult."""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Union

from .errors import ExportQualityWarning

# (output folder, scratch folder, progress, notes) -> the manifest as written
Steps = Callable[[Path, Path, Any, list[str]], dict[str, Any]]


def run_export(output: Union[str, Path], steps: int, quiet: bool, run: Steps, depth: int = 2) -> Any:
    """Run `run` inside the shared frame; `steps` counts its progress steps after the import one. `depth`: calls
    between the user and this function (quality warnings point at the user's line)."""
    from .api import ExportResult
    from .deps import import_export_stack, require_export_dependencies
    from .folder import check_output
    from .noise import silenced
    from .progress import Progress

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
        from .summary import format_summary

        print(format_summary(str(out), manifest, notes, seconds), file=sys.stdout, flush=True)
    return result
