"""Step 2: the plain ONNX export: optimum's `main_export`, or an exporter of our own where optimum has none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .document_export import document_export
from .errors import ConversionError, first_line
from .extra_outputs import extra_output_configs
from .tasks import ExportTask
from .vilt import limitations, vilt_export


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
            custom_onnx_configs=extra_output_configs(source, recipe),
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


def export_onnx(source: Path, workdir: Path, recipe: ExportTask) -> Path:
    """The plain ONNX export of a checkpoint by the recipe's exporter: optimum, vilt.py for ViLT, or document_export.py
    for LayoutLM document QA."""
    if recipe.exporter == "vilt":
        return vilt_export(source, workdir, recipe)
    if recipe.exporter == "document":
        return document_export(source, workdir, recipe)
    return optimum_export(source, workdir, recipe)


def export_limitations(recipe: ExportTask, config: dict[str, Any]) -> list[str]:
    """What the exported graph computes differently from torch (the manifest's `limitations`); [] for optimum."""
    if recipe.exporter == "vilt":
        return limitations(config)
    return []
