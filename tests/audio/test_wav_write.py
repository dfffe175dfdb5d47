"""The WAV writer against scipy's reader and the project's own: float32 round-trips exactly, 16-bit PCM within one
step, channels in transformers' (channels, samples) order, and clear errors for what cannot be written."""

from __future__ import annotations

import io

import numpy as np
import pytest

from onnxpipe.audio.wav import read_wav
from onnxpipe.audio.wav_write import wav_bytes
from onnxpipe.errors import InvalidInputError

wavfile = pytest.importorskip("scipy.io.wavfile")


def _tone(n: int = 1001, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / 16000.0
    return np.stack([0.8 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]).astype(np.float32)


@pytest.mark.parametrize("shape", ["flat", "vits", "batch"])
def test_float32_round_trips_exactly(shape):
    tone = _tone()[0]
    audio = {"flat": tone, "vits": tone[None], "batch": tone[None, None]}[shape]
    data = wav_bytes(audio, 16000)
    rate, read = wavfile.read(io.BytesIO(data))
    assert rate == 16000 and read.dtype == np.float32
    np.testing.assert_array_equal(read, tone)
    ours, ours_rate = read_wav(data)
    assert ours_rate == 16000
    np.testing.assert_array_equal(ours, tone)


def test_stereo_is_interleaved_from_channels_first():
    stereo = _tone(500, channels=2)
    rate, read = wavfile.read(io.BytesIO(wav_bytes(stereo, 32000)))
    assert rate == 32000 and read.shape == (500, 2)
    np.testing.assert_array_equal(read.T, stereo)


def test_pcm16_is_within_one_step_and_clips():
    audio = np.concatenate([_tone(400)[0], [1.5, -2.0]]).astype(np.float32)
    rate, read = wavfile.read(io.BytesIO(wav_bytes(audio, 22050, sample_format="pcm16")))
    assert rate == 22050 and read.dtype == np.int16
    np.testing.assert_allclose(read[:400] / 32767.0, audio[:400], atol=1 / 32767)
    assert read[-2:].tolist() == [32767, -32767]


@pytest.mark.parametrize(("audio", "rate", "fmt", "words"), [
    (np.zeros((2, 2, 3)), 16000, "float32", "shape"),
    (np.zeros(3), 0, "float32", "sampling_rate"),
    (np.zeros(3), 16000.0, "float32", "sampling_rate"),
    (np.zeros(3), 16000, "mp3", "sample_format"),
    (np.array([0.0, np.nan]), 16000, "float32", "NaN"),
])
def test_bad_input_gets_a_clear_error(audio, rate, fmt, words):
    with pytest.raises(InvalidInputError, match=words):
        wav_bytes(audio, rate, sample_format=fmt)
