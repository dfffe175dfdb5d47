"""Step 2: the plain ONNX export with optimum's `main_export`."""

from __future__ import annotations

from pathlib import Path

from .errors import ConversionError, first_line
from .tasks import ExportTask


def optimum_export(source: Path, workdir: Path, recipe: ExportTask) -> Path:
    """Export the checkpoint in `source` with optimum into `workdir`; return the ONNX file it wrote.

    optimum's own output check is skipped: the validate step compares every written file with torch.
    """
    from optimum.exporters.onnx import main_export

    try:
        main_export(
            str(source),
            str(workdir),
            task=recipe.optimum_task,
            library_name=recipe.optimum_library,
            do_validation=False,
        )
    except Exception as exc:  # optimum raises ValueError, KeyError, RuntimeError... for unsupported models
        raise ConversionError(
            f"optimum could not export {str(source)!r} for task {recipe.optimum_task!r}: "
            f"{first_line(exc)}"
        ) from exc
    onnx_path = workdir / "model.onnx"
    if not onnx_path.is_file():
        written = sorted(p.name for p in workdir.glob("*.onnx"))
        raise ConversionError(f"optimum wrote {written or 'no ONNX file'} for {recipe.optimum_task!r}, not model.onnx.")
    return onnx_path
