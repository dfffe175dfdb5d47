"""Choosing model.onnx: the fused graph when it matches the reference, else the plain one; refuse both if off."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import validate as check
from .errors import ValidationError
from .optimize import Fusion
from .samples import Samples
from .tasks import ExportTask


@dataclass(frozen=True)
class Fp32Choice:
    """The fp32 graph to write, the fusion record, and the samples/reference the variants are checked against."""

    path: Path
    fusion: Fusion
    figures: Optional[dict[str, Any]]  # parity with torch; None when not validated
    samples: Optional[Samples]
    reference: Optional[list[np.ndarray]]  # torch outputs on the samples; None when not validated
    notes: tuple[str, ...] = ()


def _failure(figures: dict[str, Any], recipe: ExportTask, inputs: str) -> ValidationError:
    return ValidationError(
        f"The fp32 ONNX graph differs from torch: max_abs_diff {figures['max_abs_diff']:.3g} on {', '.join(recipe.outputs)} "
        f"exceeds the tolerance {figures['tolerance']:.3g} (1e-4 x max(1, max |reference|)), on {inputs}. "
        "Nothing was written. The architecture may use an op that exports incorrectly; "
        "pass validate=False (--no-validate) to write it anyway."
    )


def choose_fp32(
    plain: Path, fusion: Fusion, recipe: ExportTask, source: Path, config: dict[str, Any], validate: bool
) -> Fp32Choice:
    """Compare the fused graph with torch (or, without validation, with the plain graph) and pick model.onnx.

    Raises ValidationError when validating and the chosen fp32 graph is outside tolerance.
    """
    if not (validate or fusion.fused):
        return Fp32Choice(plain, fusion, None, None, None)
    samples = check.build_samples(source, recipe, config)
    reference = check.TorchReference(source, recipe).outputs(samples) if validate else None
    expected = reference if reference is not None else check.onnx_outputs(plain, recipe, samples)
    tolerance = check.tolerance(expected, recipe, samples)
    chosen, figures, notes = plain, None, []
    if fusion.fused:
        fused = check.compare(check.onnx_outputs(fusion.path, recipe, samples), expected, recipe, samples, tolerance)
        if fused["max_abs_diff"] <= tolerance:
            chosen, figures = fusion.path, fused
        else:
            against = "torch" if validate else "the unfused graph"
            reason = (
                f"the fused graph differs from {against} by {fused['max_abs_diff']:.3g} "
                f"(tolerance {tolerance:.3g}); kept the unfused graph"
            )
            notes.append(f"Graph fusion dropped: {reason}.")
            fusion = fusion.rejected(reason)
    if not validate:
        return Fp32Choice(chosen, fusion, None, samples, None, tuple(notes))
    if figures is None:
        figures = check.compare(check.onnx_outputs(plain, recipe, samples), expected, recipe, samples, tolerance)
    if figures["max_abs_diff"] > tolerance:
        raise _failure(figures, recipe, samples.description)
    return Fp32Choice(chosen, fusion, figures, samples, reference, tuple(notes))
