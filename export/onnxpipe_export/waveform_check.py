"""The figures of a text-to-audio export's check against torch: each text's waveform from the ONNX graphs against
torch's, as the largest difference relative to torch's peak, and whether every length matched."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np


def waveform_figures(pairs: Iterable[tuple[np.ndarray, np.ndarray]], tolerance: float) -> dict[str, Any]:
    """`pairs` of (ONNX waveform, torch waveform), one per check text -> the manifest's validation figures."""
    worst, lengths_equal = 0.0, True
    for got, expected in pairs:
        if got.shape != expected.shape:
            lengths_equal = False
            continue
        worst = max(worst, float(np.abs(got - expected).max() / max(float(np.abs(expected).max()), 1e-6)))
    return {"max_abs_diff": worst, "tolerance": tolerance, "lengths_equal": lengths_equal,
            "passed": lengths_equal and worst <= tolerance}
