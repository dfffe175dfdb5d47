"""Audio inputs as transformers' audio pipelines take them, decoded to one float32 waveform at the model's rate.

- a file path or http(s) URL, or the bytes of a file: WAV (8/16/24/32-bit PCM, 32/64-bit float, any channel
  count) is read natively (wav.py); other formats (flac, mp3, ogg ...) go through an `ffmpeg` binary, as transformers'
  `ffmpeg_read` does, with a clear error when none is on PATH;
- a 1-D numpy array taken to be at the model's rate already (a bare array carries no rate, so a wrong one cannot
  be detected); int16 / int32 PCM is scaled to [-1, 1); a 2-D array is downmixed over its channel axis;
- a dict {"raw" or "array": samples, "sampling_rate": hz}, resampled (resample.py) when hz differs.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import subprocess
from typing import Any, Optional

import numpy as np

from onnxpipe.audio.resample import resample
from onnxpipe.audio.wav import is_wav, read_wav
from onnxpipe.errors import InvalidInputError
from onnxpipe.limits import UNLIMITED, Limits
from onnxpipe.media_sources import FILES_AND_URLS, MediaSources, describe, fetch_url

AUDIO_INPUT_TYPES = (
    "a file path or http(s) URL, the bytes of an audio file, a 1-D float numpy array at the model's sampling rate, "
    "or a dict {'raw' or 'array': numpy array, 'sampling_rate': int}"
)
MAX_CHANNELS = 8  # a 2-D array with an axis this short or shorter is read as (channels, samples) or (samples, channels)


def load_audio(item: Any, sampling_rate: int, timeout: Optional[float] = None, sources: MediaSources = FILES_AND_URLS,
               limits: Limits = UNLIMITED) -> np.ndarray:
    """One input as a finite, non-empty, mono float32 waveform at `sampling_rate` Hz; `limits` (sample rates, seconds)
    are checked on the rate and length a file or dict declares, before anything is resampled."""
    if isinstance(item, os.PathLike):
        item = os.fspath(item)
    if isinstance(item, str):
        waveform = decode(_read_string(item, timeout, sources), sampling_rate, f"The file {item[:200]!r}", limits)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        waveform = decode(bytes(item), sampling_rate, "The bytes given", limits)
    elif isinstance(item, dict):
        waveform = _from_dict(item, sampling_rate, limits)
    elif isinstance(item, np.ndarray):
        waveform = to_mono_float(item)
        limits.check_audio(waveform.size, sampling_rate)
    else:
        raise InvalidInputError(f"An audio input must be {AUDIO_INPUT_TYPES}; got {type(item).__name__}: {item!r:.80}.")
    return check_waveform(waveform)


def check_waveform(waveform: np.ndarray) -> np.ndarray:
    """Refuse empty waveforms and NaN / infinite samples, which would give the model garbage."""
    if waveform.size == 0:
        raise InvalidInputError("The audio input is empty (0 samples); pass at least one sample.")
    if not np.isfinite(waveform).all():
        bad = int((~np.isfinite(waveform)).sum())
        raise InvalidInputError(
            f"The audio input has {bad} NaN or infinite sample(s) out of {waveform.size}; clean the signal "
            "(e.g. np.nan_to_num) before passing it."
        )
    return waveform


def to_mono_float(array: np.ndarray) -> np.ndarray:
    """float32 samples: integer PCM scaled by its full range, a (channels, samples) or (samples, channels) array
    averaged over its channels."""
    if array.ndim == 2:
        channels = [to_mono_float(channel) for channel in np.moveaxis(array, _channel_axis(array.shape), 0)]
        return np.mean(channels, axis=0, dtype=np.float64).astype(np.float32)
    if array.ndim != 1:
        raise InvalidInputError(f"An audio array must be 1-D (mono) or 2-D (channels, samples); got shape {array.shape}.")
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        scale = float(info.max) + 1.0
        offset = 0.0 if array.dtype.kind == "i" else scale / 2.0
        return ((array.astype(np.float64) - offset) / (scale - offset if offset else scale)).astype(np.float32)
    if array.dtype.kind != "f":
        raise InvalidInputError(f"An audio array must hold float or integer PCM samples, got dtype {array.dtype}.")
    return array.astype(np.float32, copy=False)


def _channel_axis(shape: tuple[int, ...]) -> int:
    rows, cols = shape
    if rows <= MAX_CHANNELS < cols:
        return 0
    if cols <= MAX_CHANNELS < rows:
        return 1
    raise InvalidInputError(
        f"Cannot tell the channel axis of an audio array of shape {shape}: pass a 1-D mono array, or a 2-D array "
        f"with at most {MAX_CHANNELS} channels and more samples than that, e.g. (channels, samples)."
    )


def _from_dict(item: dict, sampling_rate: int, limits: Limits = UNLIMITED) -> np.ndarray:
    key = "raw" if item.get("raw") is not None else "array"
    if item.get(key) is None or "sampling_rate" not in item:
        raise InvalidInputError(
            "An audio dict needs a 'raw' (or 'array') key holding the samples and a 'sampling_rate' key with their "
            f"rate in Hz, e.g. {{'raw': samples, 'sampling_rate': 16000}}; got keys {sorted(item)}."
        )
    unknown = set(item) - {"raw", "array", "sampling_rate", "path"}
    if unknown:
        raise InvalidInputError(f"An audio dict takes the keys 'raw' or 'array', 'sampling_rate' and 'path'; got also {sorted(unknown)}.")
    rate = item["sampling_rate"]
    if (isinstance(rate, bool) or not isinstance(rate, (int, np.integer, float, np.floating))
            or (isinstance(rate, (float, np.floating)) and not np.isfinite(rate)) or rate <= 0 or int(rate) != rate):  # NaN and inf fail isfinite before int() could raise
        raise InvalidInputError(f"'sampling_rate' must be a positive whole number of Hz, got {rate!r}.")
    samples = item[key]
    if not isinstance(samples, np.ndarray):
        if hasattr(samples, "numpy"):  # a torch tensor from a datasets pipeline
            samples = samples.numpy()
        elif isinstance(samples, (list, tuple)):
            try:
                samples = np.asarray(samples, dtype=np.float32)
            except (ValueError, TypeError, OverflowError) as exc:  # strings, None, ragged lists, huge ints
                raise InvalidInputError(
                    f"The audio dict's {key!r} must be a list of numbers (the samples), got {samples!r:.80} ({exc})."
                ) from None
        else:
            raise InvalidInputError(f"The audio dict's {key!r} must be a numpy array, got {type(samples).__name__}.")
    waveform = check_waveform(to_mono_float(samples))
    limits.check_audio(waveform.size, int(rate))
    return resample(waveform, int(rate), sampling_rate)


def _read_string(text: str, timeout: Optional[float], sources: MediaSources) -> bytes:
    sources.check_url(text)
    if text.lower().startswith(("http://", "https://")):
        return fetch_url(text, timeout, "audio", "its file path or bytes")
    if sources.may_read_files() and os.path.isfile(text):
        with open(text, "rb") as handle:
            return handle.read()
    payload = "".join((text.split(",", 1)[1] if text.startswith("data:audio/") else text).split())
    try:
        data = base64.b64decode(payload.encode(), validate=True) if len(payload) >= 8 else b""
    except (binascii.Error, ValueError):
        data = b""
    if not data:
        raise InvalidInputError(
            f"{text[:200]!r} is not an existing audio file, an http(s) URL or base64-encoded audio; this pipeline "
            f"takes {describe(sources)}. Check the path (relative paths are read from the current directory)."
        )
    return data


def decode(data: bytes, sampling_rate: int, what: str, limits: Limits = UNLIMITED) -> np.ndarray:
    """Decode a WAV file natively, anything else with ffmpeg; resample to `sampling_rate`."""
    if is_wav(data):
        samples, rate = read_wav(data, what)
        limits.check_audio(samples.size, rate)
        return resample(check_waveform(samples), rate, sampling_rate)
    audio = ffmpeg_decode(data, sampling_rate, what, limits.max_audio_seconds)
    limits.check_audio(audio.size, sampling_rate)
    return audio


def ffmpeg_decode(data: bytes, sampling_rate: int, what: str, max_seconds: Optional[float] = None) -> np.ndarray:
    """Decode any format ffmpeg reads to mono float32 at `sampling_rate` (transformers' ffmpeg_read); with
    `max_seconds`, ffmpeg stops one second past it (the caller refuses the clip), so a small file cannot decode to hours."""
    binary = shutil.which("ffmpeg")
    if binary is None:
        raise InvalidInputError(
            f"{what} is not a PCM WAV file, and decoding other formats (flac, mp3, ogg ...) needs the ffmpeg binary, "
            "which is not on PATH. Install ffmpeg (e.g. apt-get install ffmpeg), or pass a WAV file or a numpy array."
        )
    command = [binary, "-i", "pipe:0", "-ac", "1", "-ar", str(sampling_rate), "-f", "f32le", "-hide_banner", "-loglevel", "quiet", "pipe:1"]
    if max_seconds is not None:
        command[-1:-1] = ["-t", f"{max_seconds + 1:g}"]
    result = subprocess.run(command, input=data, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    audio = np.frombuffer(result.stdout, dtype=np.float32)
    if audio.size == 0:
        raise InvalidInputError(f"{what} is not a readable audio file (ffmpeg decoded no samples from it).")
    return audio.copy()
