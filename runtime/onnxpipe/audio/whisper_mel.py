"""Whisper's log-mel spectrogram in numpy, equal to transformers' WhisperFeatureExtractor.

Centered STFT (reflect padding, periodic Hann window), power spectrum without the last frame, a Slaney mel
filter bank, log10 clamped at 1e-10, dynamic range limited to 8 (per clip) and scaled by (x + 4) / 4.
"""

from __future__ import annotations

import numpy as np


def hertz_to_mel_slaney(freq: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    freq = np.asarray(freq, dtype=np.float64)
    mels = 3.0 * freq / 200.0
    logstep = 27.0 / np.log(6.4)
    high = freq >= 1000.0
    mels = np.where(high, 15.0 + np.log(np.maximum(freq, 1e-10) / 1000.0) * logstep, mels)
    return mels


def mel_to_hertz_slaney(mels: np.ndarray) -> np.ndarray:
    """The inverse of hertz_to_mel_slaney."""
    mels = np.asarray(mels, dtype=np.float64)
    freq = 200.0 * mels / 3.0
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= 15.0, 1000.0 * np.exp(logstep * (mels - 15.0)), freq)


def mel_filter_bank(num_frequency_bins: int, num_mel_filters: int, sampling_rate: int,
                    min_frequency: float = 0.0, max_frequency: float = 8000.0) -> np.ndarray:
    """(num_frequency_bins, num_mel_filters) triangular filters on the Slaney scale, Slaney area-normalized."""
    mel_freqs = np.linspace(hertz_to_mel_slaney(min_frequency), hertz_to_mel_slaney(max_frequency), num_mel_filters + 2)
    filter_freqs = mel_to_hertz_slaney(mel_freqs)
    fft_freqs = np.linspace(0, sampling_rate // 2, num_frequency_bins)
    slopes = filter_freqs[None, :] - fft_freqs[:, None]
    diff = np.diff(filter_freqs)
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    return filters * (2.0 / (filter_freqs[2 : num_mel_filters + 2] - filter_freqs[:num_mel_filters]))[None, :]


def hann_window(length: int) -> np.ndarray:
    """The periodic Hann window (torch.hann_window's default)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def power_spectrogram(waveform: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """|STFT|^2 of a centered, reflect-padded signal: (n_fft // 2 + 1, frames), the last frame dropped."""
    half = n_fft // 2
    if waveform.shape[0] <= half:
        raise ValueError(f"a clip of {waveform.shape[0]} samples is too short for reflect padding by {half}.")
    padded = np.pad(waveform.astype(np.float32, copy=False), (half, half), mode="reflect")
    count = 1 + (padded.shape[0] - n_fft) // hop_length
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(count, n_fft), strides=(padded.strides[0] * hop_length, padded.strides[0]), writeable=False
    )
    spectrum = np.fft.rfft(frames * hann_window(n_fft).astype(np.float32), axis=-1)[:-1]
    return (spectrum.real**2 + spectrum.imag**2).T  # float32, as torch.stft(...).abs() ** 2


def log_mel_spectrogram(waveform: np.ndarray, filters: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Whisper's input features of one (already padded) clip: (num_mel_filters, len // hop_length) float32."""
    mel = filters.T.astype(np.float32) @ power_spectrogram(waveform, n_fft, hop_length)
    log_spec = np.log10(np.maximum(mel, np.float32(1e-10)))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + np.float32(4.0)) / np.float32(4.0)).astype(np.float32)
