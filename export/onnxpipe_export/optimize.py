"""Step 3: graph fusion with onnxruntime's transformer optimizer, keyed on config.json `model_type`."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import ConversionError, first_line
from .onnx_files import save_model

# config.json model_type -> onnxruntime.transformers.optimizer model_type. Each row was checked on a
# tiny random checkpoint: it fuses (see get_fused_operator_statistics) and still matches torch.
ORT_MODEL_TYPES: dict[str, str] = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "camembert": "bert",
    "distilbert": "bert",
    "electra": "bert",
    "mpnet": "bert",
    "albert": "bert",
    "deberta-v2": "bert",
    # vision: fuses SkipLayerNorm / BiasGelu (attention stays unfused on tiny ViTs); int8 on top still validates
    "vit": "vit",
}


@dataclass(frozen=True)
class Fusion:
    """What the fusion step did: the manifest's `optimization` entry, plus the fused file if any."""

    fused: bool
    reason: Optional[str] = None  # why there is no fused graph
    ort_model_type: Optional[str] = None
    fused_operators: dict[str, int] = field(default_factory=dict)
    path: Optional[Path] = None  # the fused graph, when one was written

    def manifest_entry(self) -> dict[str, Any]:
        """The `optimization` block of the manifest."""
        if self.fused:
            return {
                "fusion": True,
                "ort_model_type": self.ort_model_type,
                "attention_mask_format": "raw",
                "fused_operators": dict(self.fused_operators),
            }
        entry: dict[str, Any] = {"fusion": False, "reason": self.reason}
        if self.ort_model_type:
            entry["ort_model_type"] = self.ort_model_type
        if self.fused_operators:
            entry["fused_operators"] = dict(self.fused_operators)
        return entry

    def rejected(self, reason: str) -> Fusion:
        """The same fusion, recorded as not used, for a fused graph that failed validation."""
        return Fusion(False, reason, self.ort_model_type, self.fused_operators, None)


def fuse(model_path: Path, output_path: Path, model_type: Optional[str]) -> Fusion:
    """Fuse attention, layer norms and GELU of an encoder graph into onnxruntime contrib ops.

    Unknown model types and graphs where nothing fuses give `Fusion(fused=False, reason=...)`.
    """
    ort_type = ORT_MODEL_TYPES.get(model_type or "")
    if ort_type is None:
        known = ", ".join(sorted(ORT_MODEL_TYPES))
        return Fusion(False, f"model_type {model_type!r} has no known fusion recipe (known: {known})")

    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions(ort_type)
    # a raw 0/1 mask works for any padding side; the default 1-D mask index assumes right padding
    options.use_raw_attention_mask(True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the optimizer print()s shape-inference failures
            optimized = optimize_model(
                str(model_path), model_type=ort_type, num_heads=0, hidden_size=0, optimization_options=options
            )
    except Exception as exc:  # the optimizer's pattern matchers fail in many ways on unusual graphs
        return Fusion(False, f"onnxruntime's {ort_type!r} optimizer failed: {first_line(exc)}", ort_type)
    counts = {op: int(n) for op, n in optimized.get_fused_operator_statistics().items() if n}
    if not counts:
        return Fusion(False, f"onnxruntime's {ort_type!r} optimizer found nothing to fuse", ort_type)
    try:
        save_model(optimized.model, output_path)
    except Exception as exc:
        raise ConversionError(f"Cannot save the fused graph to {output_path}: {first_line(exc)}") from exc
    return Fusion(True, None, ort_type, counts, output_path)
