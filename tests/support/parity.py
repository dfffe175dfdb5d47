"""Comparing onnxpipe results with transformers results: same structure, same labels, close numbers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FP32_ATOL = 1e-4  # DESIGN.md: fp32 graphs, scores within 1e-4


def assert_same(ours: Any, ref: Any, atol: float = FP32_ATOL, path: str = "result") -> None:
    """Recursively assert equal structure and strings, and numbers within atol."""
    if isinstance(ref, dict):
        assert isinstance(ours, dict), f"{path}: expected dict, got {type(ours).__name__}"
        assert ours.keys() == ref.keys(), f"{path}: keys {sorted(ours)} != {sorted(ref)}"
        for key in ref:
            assert_same(ours[key], ref[key], atol, f"{path}[{key!r}]")
    elif isinstance(ref, (list, tuple)):
        assert isinstance(ours, (list, tuple)), f"{path}: expected list, got {type(ours).__name__}"
        assert len(ours) == len(ref), f"{path}: length {len(ours)} != {len(ref)}"
        for i, (a, b) in enumerate(zip(ours, ref)):
            assert_same(a, b, atol, f"{path}[{i}]")
    elif isinstance(ref, float):
        assert isinstance(ours, float), f"{path}: expected float, got {type(ours).__name__}"
        assert math.isclose(ours, ref, abs_tol=atol), f"{path}: {ours} vs {ref} (atol {atol})"
    elif hasattr(ref, "numpy") or isinstance(ref, np.ndarray):
        ref_array = ref.numpy() if hasattr(ref, "numpy") else ref
        np.testing.assert_allclose(np.asarray(ours), ref_array, atol=atol, rtol=0, err_msg=path)
    else:
        assert ours == ref, f"{path}: {ours!r} != {ref!r}"


def labels_of(results: list) -> list:
    """The top label of each item of a legacy-shaped text-classification result list."""
    return [r["label"] if isinstance(r, dict) else r[0]["label"] for r in results]
