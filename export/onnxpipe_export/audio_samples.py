"""Audio samples for validating and calibrating speech exports: clips generated in numpy (tones, chirps, noise,
silence), featurized by the checkpoint's own transformers feature extractor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConversionError, first_line
from .samples import Batch, Samples

# seconds per validation batch; two different clips of that length per batch, so batches need no padding
# (wav2vec2-family graphs take no attention mask)
VALIDATION_SECONDS: tuple[float, ...] = (0.5, 1.3, 2.0)
CALIBRATION_SECONDS: tuple[float, ...] = (0.4, 0.9, 1.6, 2.5)
KINDS: tuple[str, ...] = ("tone", "chirp", "noise", "speechlike", "silence")


def generated_clip(seconds: float, rate: int, kind: str, seed: int) -> np.ndarray:
    """A float32 mono clip of `kind`: a tone, a rising chirp, white noise, amplitude-modulated harmonics
    (a crude vowel-like sound) or near-silence, varied by `seed`."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    if kind == "tone":
        clip = 0.5 * np.sin(2 * np.pi * rng.uniform(150, 1500) * t)
    elif kind == "chirp":
        low, high = rng.uniform(100, 400), rng.uniform(2000, 6000)
        clip = 0.4 * np.sin(2 * np.pi * (low * t + (high - low) * t**2 / (2 * max(seconds, 1e-3))))
    elif kind == "noise":
        clip = rng.normal(0, 0.2, t.shape)
    elif kind == "speechlike":
        pitch = rng.uniform(90, 220)
        clip = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 8))
        clip = 0.3 * clip * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * t)) + rng.normal(0, 0.01, t.shape)
    elif kind == "silence":
        clip = rng.normal(0, 1e-4, t.shape)
    else:
        raise ValueError(f"unknown clip kind {kind!r}; choose one of {', '.join(KINDS)}")
    return clip.astype(np.float32)


def load_feature_extractor(source: Path) -> Any:
    """The checkpoint's transformers feature extractor."""
    from transformers import AutoFeatureExtractor

    try:
        return AutoFeatureExtractor.from_pretrained(str(source))
    except Exception as exc:
        raise ConversionError(f"Cannot load the feature extractor of {str(source)!r}: {first_line(exc)}") from exc


def _batch(extractor: Any, clips: list[np.ndarray]) -> Batch:
    encoded = extractor(clips, sampling_rate=extractor.sampling_rate, return_tensors="np")
    return Batch({k: np.asarray(v) for k, v in encoded.items() if k in ("input_values", "input_features")})


def build_audio_samples(source: Path) -> Samples:
    """Validation batches: for each length, two different generated clips of that length."""
    extractor = load_feature_extractor(source)
    rate = int(extractor.sampling_rate)
    batches = []
    for i, seconds in enumerate(VALIDATION_SECONDS):
        kinds = (KINDS[(2 * i) % len(KINDS)], KINDS[(2 * i + 1) % len(KINDS)])
        batches.append(_batch(extractor, [generated_clip(seconds, rate, kind, 10 * i + j) for j, kind in enumerate(kinds)]))
    lengths = ", ".join(f"{s} s" for s in VALIDATION_SECONDS)
    return Samples(tuple(batches), f"{2 * len(batches)} generated clips (tones, chirps, noise, harmonics, silence) of {lengths} at {rate} Hz")


def build_audio_calibration(source: Path) -> list[Batch]:
    """One generated clip per calibration batch, distinct from the validation clips."""
    extractor = load_feature_extractor(source)
    rate = int(extractor.sampling_rate)
    return [
        _batch(extractor, [generated_clip(seconds, rate, KINDS[i % len(KINDS)], 100 + i)])
        for i, seconds in enumerate(CALIBRATION_SECONDS)
    ]
