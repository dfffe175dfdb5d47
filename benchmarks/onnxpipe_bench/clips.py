"""Deterministic benchmark audio: speech-like clips (voiced harmonics with a moving pitch, syllable envelopes,
noise), float32 at 16 kHz, sent to workers as base64 of the raw samples and decoded to numpy before timing."""

from __future__ import annotations

import base64

import numpy as np


def clip(seconds: float, rate: int, seed: int) -> np.ndarray:
    """A mono float32 clip: a few harmonics of a gliding pitch, 4 Hz syllable envelope, quiet noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate), dtype=np.float64) / rate
    pitch = 120 + 40 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6.28))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6.28)), 0, None)
    audio = 0.3 * voice * envelope + 0.01 * rng.standard_normal(t.shape)
    return audio.astype(np.float32)


def make_clips(count: int, seconds: float, rate: int, seed: int = 0) -> list[str]:
    """`count` different clips as base64 of little-endian float32 samples (JSON-safe)."""
    return [base64.b64encode(clip(seconds, rate, seed * 1000 + i).astype("<f4").tobytes()).decode("ascii") for i in range(count)]


def decode_clips(items: list) -> list:
    """The numpy arrays of base64 clips (what the worker stores before timing)."""
    return [np.frombuffer(base64.b64decode(item), dtype="<f4").copy() for item in items]
