"""Band-limited resampling in numpy: the windowed-sinc (Hann) polyphase filter torchaudio's `resample` uses.

transformers resamples `{"array", "sampling_rate"}` inputs with `torchaudio.functional.resample` (defaults:
lowpass_filter_width=6, rolloff=0.99, sinc_interp_hann). This is the same filter design and output length,
written with numpy so the runtime needs no torch: one kernel row per output phase, applied with a strided
window view and a matrix product.
"""

from __future__ import annotations

import math

import numpy as np

LOWPASS_FILTER_WIDTH = 6  # zero crossings of the sinc on each side
ROLLOFF = 0.99  # cutoff as a fraction of the lower Nyquist frequency


def _kernel(orig: int, new: int, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """(new, 2 * width + orig) filter taps, one row per output phase, and the half-width in input samples."""
    base = min(orig, new) * ROLLOFF
    width = math.ceil(LOWPASS_FILTER_WIDTH * orig / base)
    idx = np.arange(-width, width + orig, dtype=dtype)[None, :] / orig
    t = (np.arange(0, -new, -1, dtype=dtype)[:, None] / new + idx) * base
    t = np.clip(t, -LOWPASS_FILTER_WIDTH, LOWPASS_FILTER_WIDTH)
    window = np.cos(t * math.pi / LOWPASS_FILTER_WIDTH / 2) ** 2
    t = t * math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        sinc = np.where(t == 0, 1.0, np.sin(t) / t)
    return (sinc * window * (base / orig)).astype(dtype), width


def resample(waveform: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Resample a 1-D waveform from `orig_rate` to `new_rate` Hz; the result has ceil(len * new / orig) samples."""
    orig_rate, new_rate = int(orig_rate), int(new_rate)
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sampling rates must be positive integers, got {orig_rate} -> {new_rate}.")
    if orig_rate == new_rate:
        return waveform
    dtype = waveform.dtype if waveform.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    kernel, width = _kernel(orig, new, dtype)
    length = waveform.shape[-1]
    padded = np.pad(waveform.astype(dtype, copy=False), (width, width + orig))
    taps = kernel.shape[1]
    count = (padded.shape[0] - taps) // orig + 1
    windows = np.lib.stride_tricks.as_strided(
        padded, shape=(count, taps), strides=(padded.strides[0] * orig, padded.strides[0]), writeable=False
    )
    out = (windows @ kernel.T).reshape(-1)  # (count, new) -> interleaved output phases
    target = math.ceil(new * length / orig)
    return out[:target]
