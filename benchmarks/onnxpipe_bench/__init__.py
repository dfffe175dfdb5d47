"""onnxpipe's benchmark harness: onnxpipe vs the transformers torch pipeline vs Optimum, same inputs, same run.

Importing this package imports nothing else: each engine's worker process (`onnxpipe_bench.worker`) must start
without the harness adding to its cold start, so `run_bench` and `BenchOptions` load on first use.
"""

from typing import Any

__all__ = ["BenchOptions", "run_bench"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import bench

        return getattr(bench, name)
    raise AttributeError(f"module 'onnxpipe_bench' has no attribute {name!r}")
