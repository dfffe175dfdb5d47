"""The single-graph export path (encoders, vision, CTC speech): optimum (or vilt.py) ONNX -> fused graph -> fp32
checked against torch -> int8 / fp16 variants -> validated folder with a manifest. api.export dispatches here for
every recipe of kind "graph"."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from onnxpipe.manifest import variant_filename, write_manifest

from . import validate as check
from .calibration import build_calibration
from .convert import export_limitations, export_onnx
from .deps import created_with
from .folder import check_outside_source, install
from .fp32 import choose_fp32
from .manifest_entries import onnx_file_entry, source_entry, stored_validation, support_entries, with_acceptance
from .onnx_files import opset, place_graph
from .optimize import Fusion, fuse
from .quantize import write_variant
from .retrieval_checks import check_retrieval_source
from .scratch_export import ExportResult, run_export
from .source import resolve_source
from .support import copy_support_files
from .tasks import ExportTask, recipe_for_checkpoint


@dataclass(frozen=True)
class _Plan:
    """The checked arguments of one export."""

    model: Any
    recipe: ExportTask
    dtypes: list[str]
    output: Path
    optimize: bool
    revision: Optional[str]
    validate: bool


def _step_count(dtypes: list[str], optimize: bool) -> int:
    # import, source, optimum export, [fusion], fp32 check, one per variant, write folder
    return 4 + int(optimize) + sum(d != "fp32" for d in dtypes) + 1


def export_graph(
    model: Union[str, os.PathLike[str]],
    recipe: ExportTask,
    output: Union[str, os.PathLike[str]],
    dtypes: list[str],
    *,
    optimize: bool = True,
    revision: Optional[str] = None,
    quiet: bool = False,
    validate: bool = True,
) -> ExportResult:
    """Export a checkpoint for a single-graph `recipe` in the checked `dtypes` (api.export dispatches here)."""
    return run_export(
        output, _step_count(dtypes, optimize) - 1, quiet,
        lambda out, work, progress, notes: _run(
            _Plan(model, recipe, dtypes, out, optimize, revision, validate), work, progress, notes
        ),
    )


def _run(plan: _Plan, work: Path, progress: Any, notes: list[str]) -> dict[str, Any]:
    """The export steps inside a scratch folder; returns the manifest after installing the folder."""
    recipe = plan.recipe
    with progress.step("resolve source"):
        source = resolve_source(plan.model, plan.revision)
    recipe = recipe_for_checkpoint(recipe, source.config)  # e.g. DETR panoptic for image-segmentation
    check_retrieval_source(recipe.task, source.path, source.config)  # a masked-LM head for sparse-embedding...
    check_outside_source(plan.output, source.path)

    with progress.step(f"{recipe.exporter} export"):
        plain = export_onnx(source.path, work / "plain", recipe)

    fusion = Fusion(False, "turned off by optimize=False (--no-optimize)")
    if plan.optimize:
        with progress.step("graph fusion"):
            fusion = fuse(plain, work / "fused.onnx", source.config.get("model_type"))

    with progress.step("check fp32 against torch" if plan.validate else "check fused graph"):
        choice = choose_fp32(plain, fusion, recipe, source.path, source.config, plan.validate)
    notes.extend(choice.notes)

    staging = work / "folder"
    staging.mkdir()
    fp32_path = staging / variant_filename("fp32")
    place_graph(choice.path, fp32_path)
    validations: dict[str, Optional[dict[str, Any]]] = {"fp32": choice.figures}
    quantization: dict[str, Optional[dict[str, Any]]] = {"fp32": None}
    calibration = build_calibration(source.path, source.config, recipe.modality) if "int8" in plan.dtypes else []
    for dtype in plan.dtypes:
        if dtype == "fp32":
            continue
        with progress.step(f"{dtype} variant"):
            path = staging / variant_filename(dtype)
            quantization[dtype] = write_variant(dtype, fp32_path, path, calibration)
            if choice.reference is not None:  # reduced precision is reported (tolerance None), never refused
                outputs = check.onnx_outputs(path, recipe, choice.samples)
                validations[dtype] = with_acceptance(check.compare(outputs, choice.reference, recipe, choice.samples))
                warning = check.quality_warning(path.name, validations[dtype])
                if warning:
                    notes.append(warning)

    with progress.step("write folder"):
        support = copy_support_files(source.path, plain.parent, staging)
        if choice.reference is not None:
            validations["fp32"] = with_acceptance(choice.figures)
        written = ["fp32", *(d for d in plan.dtypes if d != "fp32")]
        manifest: dict[str, Any] = {
            "task": recipe.task,
            "source": source_entry(source.model, source.revision, source.config),
            "created_with": created_with(),
            "export": {"optimum_task": recipe.optimum_task, "exporter": recipe.exporter, "opset": opset(fp32_path)},
            "optimization": choice.fusion.manifest_entry(),
            "default_dtype": plan.dtypes[0],
            "files": {
                variant_filename(d): onnx_file_entry(staging / variant_filename(d), d, quantization[d], validations.get(d))
                for d in written
            },
            "support_files": support_entries(staging, support),
            "validation": stored_validation(staging, recipe, choice) if choice.reference is not None else None,
        }
        limitations = export_limitations(recipe, source.config)
        if limitations:
            manifest["limitations"] = limitations
        install(staging, plan.output)
        manifest = _with_format_version(write_manifest(plan.output, manifest))
    return manifest


def _with_format_version(path: Path) -> dict[str, Any]:
    """The manifest as written (write_manifest adds format_version)."""
    return json.loads(path.read_text(encoding="utf-8"))
