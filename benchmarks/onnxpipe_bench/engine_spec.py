"""What a bench worker process loads: the engine kind, the task, the model folder and the session settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

KINDS = ("onnxpipe", "transformers", "optimum")


@dataclass(frozen=True)
class EngineSpec:
    """What one worker process loads: the engine kind and everything it needs to find the model."""

    kind: str  # onnxpipe | transformers | optimum
    task: str
    model: str  # onnxpipe folder (onnxpipe, optimum) or torch checkpoint folder (transformers)
    dtype: str = "fp32"  # the ONNX variant (onnxpipe, optimum); "fp32" for torch
    file: Optional[str] = None  # the ONNX file name inside `model` (optimum)
    device: str = "cpu"
    threads: Optional[int] = None
    # onnxpipe only, for measuring levers: rebuild the pipeline's session with these settings
    # (label, level = a GraphOptimizationLevel name, threads, spinning, mem_pattern, arena, file = another ONNX file)
    session: Optional[dict[str, Any]] = None

    @property
    def name(self) -> str:
        """The engine's label in reports, e.g. "onnxpipe int8"."""
        if self.session:
            return f"onnxpipe {self.dtype} [{self.session['label']}]"
        return {"onnxpipe": f"onnxpipe {self.dtype}", "optimum": f"optimum {self.dtype}"}.get(self.kind, "transformers torch fp32")
