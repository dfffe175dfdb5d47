"""Bicubic resizing of float planes in numpy, as torch's `F.interpolate(mode="bicubic", align_corners=False)`
computes it on the CPU (transformers' depth post-processing): the same source positions, edge clamping and cubic
weights (A = -0.75) in float32, summed over the four source columns, then the four source rows. It agrees with torch
to float32 rounding (about 1e-6 relative, measured with torch 2.13), not bit for bit: torch's compiled kernel rounds
the outer cubic weights differently."""

from __future__ import annotations

import numpy as np

from onnxpipe.errors import InvalidInputError

_A = np.float32(-0.75)
_ONE, _TWO = np.float32(1), np.float32(2)


def _near(x: np.ndarray) -> np.ndarray:
    """torch's cubic_convolution1 (|x| <= 1): ((A + 2) x - (A + 3)) x x + 1, in float32."""
    return ((_A + _TWO) * x - (_A + np.float32(3))) * x * x + _ONE


def _far(x: np.ndarray) -> np.ndarray:
    """torch's cubic_convolution2 (1 < |x| < 2): ((A x - 5 A) x + 8 A) x - 4 A, in float32."""
    return ((_A * x - np.float32(5) * _A) * x + np.float32(8) * _A) * x - np.float32(4) * _A


def cubic_taps(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices (out, 4), weights (out, 4) float32) of each output position along one axis: source position
    scale * (i + 0.5) - 0.5 (not clamped, as torch's cubic), taps at floor - 1 .. floor + 2 clamped to the edge."""
    scale = np.float32(in_size / out_size)
    source = scale * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    floor = np.floor(source)
    t = (source - floor).astype(np.float32)
    weights = np.stack([_far(t + _ONE), _near(t), _near(_ONE - t), _far((_ONE - t) + _ONE)], axis=1)
    indices = np.clip(floor.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :], 0, in_size - 1)
    return indices, weights.astype(np.float32)


def _weighted_sum(values: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """sum_j values[j] * weights[..., j] in float32, in torch's order."""
    total = values[0] * weights[..., 0]
    for j in range(1, 4):
        total = total + values[j] * weights[..., j]
    return total.astype(np.float32, copy=False)


def bicubic_resize(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """A 2-D float plane resized to (height, width) bicubically in float32, as torch.nn.functional.interpolate
    (mode="bicubic", align_corners=False, no antialiasing) on a (1, 1, h, w) tensor."""
    if plane.ndim != 2 or min(plane.shape) < 1:
        raise InvalidInputError(f"bicubic_resize takes a non-empty 2-D array, got shape {plane.shape}.")
    if height < 1 or width < 1:
        raise InvalidInputError(f"bicubic_resize needs a size of at least 1x1, got {height}x{width}.")
    plane = np.ascontiguousarray(plane, dtype=np.float32)
    rows, row_weights = cubic_taps(height, plane.shape[0])
    cols, col_weights = cubic_taps(width, plane.shape[1])
    # along the width first, for every source row (torch's inner loop), then along the height
    across = _weighted_sum([plane[:, cols[:, k]] for k in range(4)], col_weights[None, :, :])
    return _weighted_sum([across[rows[:, j], :] for j in range(4)], row_weights[:, None, :])
