"""A small WAV (RIFF) writer for generated audio: IEEE float 32-bit (lossless, what `scipy.io.wavfile.write` makes of
a transformers text-to-audio output) or 16-bit PCM (what every player reads). audio/wav.py reads both back."""

from __future__ import annotations

import struct

import numpy as np

from onnxpipe.errors import InvalidInputError

SAMPLE_FORMATS = {"float32": (3, "<f4"), "pcm16": (1, "<i2")}  # name -> (WAV format tag, little-endian dtype)


def channels_last(audio: np.ndarray) -> np.ndarray:
    """`audio` as (samples, channels). transformers' text-to-audio output is (samples,), (channels, samples) (VITS
    gives (1, samples), MusicGen stereo (2, samples)), or that with a leading batch axis of 1."""
    array = np.asarray(audio)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 1:
        return array[:, None]
    if array.ndim == 2:
        return array.T
    raise InvalidInputError(
        f"audio of shape {array.shape} cannot be written as WAV; pass (samples,) or (channels, samples)."
    )


def wav_bytes(audio: np.ndarray, sampling_rate: int, sample_format: str = "float32") -> bytes:
    """A WAV file holding `audio` (floats in [-1, 1], shaped as channels_last reads) at `sampling_rate` Hz.
    `sample_format` is "float32" (exact) or "pcm16" (samples clipped to [-1, 1] and rounded)."""
    if sample_format not in SAMPLE_FORMATS:
        raise InvalidInputError(f"sample_format={sample_format!r} is not known; use one of {sorted(SAMPLE_FORMATS)}.")
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)) or sampling_rate < 1:
        raise InvalidInputError(f"sampling_rate must be a positive int (Hz), got {sampling_rate!r}.")
    frames = channels_last(audio).astype(np.float64)
    if not np.all(np.isfinite(frames)):
        raise InvalidInputError("the audio holds NaN or infinite samples; it cannot be written as WAV.")
    tag, dtype = SAMPLE_FORMATS[sample_format]
    if sample_format == "pcm16":
        samples = np.round(np.clip(frames, -1.0, 1.0) * 32767.0).astype(dtype)
    else:
        samples = frames.astype(dtype)
    channels, width = frames.shape[1], np.dtype(dtype).itemsize
    payload = samples.tobytes()  # (samples, channels) in C order: channels interleaved, as WAV stores them
    fmt = struct.pack("<HHIIHH", tag, channels, int(sampling_rate), int(sampling_rate) * channels * width,
                      channels * width, 8 * width)
    chunks = [b"fmt ", struct.pack("<I", len(fmt)), fmt]
    if tag == 3:  # non-PCM formats carry a fact chunk with the frame count
        chunks += [b"fact", struct.pack("<I", 4), struct.pack("<I", frames.shape[0])]
    chunks += [b"data", struct.pack("<I", len(payload)), payload, b"\0" * (len(payload) & 1)]
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body
