"""The graphs of an export with a KV cache, staged per component: optimum's `-with-past` export, of which only the
components that onnxpipe runs are kept (`model` for decoder-only models; `encoder_model` and the merged decoder
`decoder_model_merged` for encoder-decoders and Whisper), each moved into a staging folder under its fp32 name.

The generation path (generative.py) and the Whisper path (whisper_export.py) both start from these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onnxpipe.manifest import variant_filename

from .errors import ConversionError, first_line
from .folder import check_outside_source
from .onnx_files import place_graph
from .tasks import ExportTask
from .tied_weights import fuse_file


def _optimum_export(source: Path, work: Path, recipe: ExportTask, components: dict[str, str]) -> dict[str, Path]:
    """Run optimum's main_export; return the fp32 graph of each component (the other decoders are dropped)."""
    from optimum.exporters.onnx import main_export

    try:
        main_export(str(source), str(work), task=recipe.optimum_task, library_name="transformers", do_validation=False)
    except Exception as exc:  # optimum raises ValueError, KeyError, RuntimeError... on unsupported models
        raise ConversionError(
            f"optimum could not export {str(source)!r} for {recipe.optimum_task!r}: {first_line(exc)}"
        ) from exc
    paths = {role: work / f"{stem}.onnx" for role, stem in components.items()}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        written = sorted(p.name for p in work.glob("*.onnx"))
        raise ConversionError(f"optimum wrote {written} for {recipe.optimum_task!r}, without {missing}.")
    return paths


def stage_components(
    source: Path, out: Path, recipe: ExportTask, components: dict[str, str], work: Path, progress: Any,
    tie_heads: bool = True,
) -> tuple[Path, Path, int]:
    """Export `source` with optimum and move each component's fp32 graph into a staging folder, named by its stem;
    refuses an output inside the checkpoint first. With `tie_heads`, tied LM heads become FusedMatMul on the
    embedding (tied_weights.py). Returns (staging folder, optimum's folder, which keeps the unmerged decoders and
    support files, the number of heads rewritten). Shared by the generation and Whisper paths."""
    check_outside_source(out, source)
    with progress.step("optimum export"):
        plain = _optimum_export(source, work / "plain", recipe, components)
    staging = work / "folder"
    staging.mkdir()
    tied = 0
    for role, stem in components.items():
        place_graph(plain[role], staging / variant_filename("fp32", stem))
        if tie_heads:
            tied += fuse_file(staging / variant_filename("fp32", stem))
    return staging, work / "plain", tied
