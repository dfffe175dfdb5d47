"""The engines a worker process can load, as a lazy table: each engine's loader lives in its own module, imported
only by the worker that runs it, so the torch and Optimum workers never import onnxpipe and the onnxpipe worker never
imports torch (the same shape as the runtime's task table).

Each loader returns the pipeline and a `CoreTimer` that adds up the time spent in the engine's inference call
(onnxruntime `InferenceSession.run`, or the torch model's forward).
"""

from __future__ import annotations

import importlib
from typing import Any

from .core_timer import CoreTimer
from .engine_spec import KINDS, EngineSpec

# engine kind -> "module:function" under onnxpipe_bench (imported only when a worker loads that engine)
LOADERS: dict[str, str] = {
    "onnxpipe": "engine_onnxpipe:load_onnxpipe",
    "transformers": "engine_torch:load_transformers",
    "optimum": "engine_optimum:load_optimum",
}
assert set(LOADERS) == set(KINDS)


def load_engine(spec: EngineSpec) -> tuple[Any, CoreTimer]:
    """Import the loader of `spec.kind` and run it: the pipeline and its timer."""
    module_name, function = LOADERS[spec.kind].split(":")
    module = importlib.import_module(f"onnxpipe_bench.{module_name}")
    return getattr(module, function)(spec)
