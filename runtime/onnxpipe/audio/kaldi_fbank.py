"""Kaldi-style log mel filter bank features in numpy, as transformers' ASTFeatureExtractor computes them
without torchaudio (its numpy path): 25 ms frames every 10 ms without centering, DC offset removed per frame,
pre-emphasis 0.97, symmetric Hann window, 512-point FFT power, kaldi-scale mel filters triangular in mel space,
natural log floored at float32 epsilon."""

from __future__ import annotations

import numpy as np

FRAME_LENGTH = 400
HOP_LENGTH = 160
FFT_LENGTH = 512
PREEMPHASIS = 0.97
MEL_FLOOR = 1.192092955078125e-07  # float32 epsilon


def hertz_to_mel_kaldi(freq: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def kaldi_mel_filters(num_mel_bins: int, sampling_rate: int, min_frequency: float = 20.0) -> np.ndarray:
    """(FFT_LENGTH // 2 + 1, num_mel_bins) triangular filters laid out in kaldi mel space, unnormalized."""
    mel_freqs = np.linspace(hertz_to_mel_kaldi(min_frequency), hertz_to_mel_kaldi(sampling_rate // 2), num_mel_bins + 2)
    bins = FFT_LENGTH // 2 + 1
    fft_mels = hertz_to_mel_kaldi(sampling_rate / ((bins - 1) * 2) * np.arange(bins))
    slopes = mel_freqs[None, :] - fft_mels[:, None]
    diff = np.diff(mel_freqs)
    return np.maximum(0.0, np.minimum(-slopes[:, :-2] / diff[:-1], slopes[:, 2:] / diff[1:]))


def log_mel_fbank(waveform: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """(frames, num_mel_bins) float32 log mel energies of a clip of at least FRAME_LENGTH samples."""
    signal = waveform.astype(np.float64)
    count = 1 + (signal.size - FRAME_LENGTH) // HOP_LENGTH
    frames = np.lib.stride_tricks.as_strided(
        signal, shape=(count, FRAME_LENGTH), strides=(signal.strides[0] * HOP_LENGTH, signal.strides[0]), writeable=False
    )
    frames = frames - frames.mean(axis=1, keepdims=True)
    emphasized = np.empty_like(frames)
    emphasized[:, 1:] = frames[:, 1:] - PREEMPHASIS * frames[:, :-1]
    emphasized[:, 0] = frames[:, 0] * (1 - PREEMPHASIS)
    spectrum = np.fft.rfft(emphasized * np.hanning(FRAME_LENGTH), n=FFT_LENGTH, axis=1).astype(np.complex64)
    power = np.abs(spectrum, dtype=np.float64) ** 2
    return np.log(np.maximum(MEL_FLOOR, power @ filters)).astype(np.float32)
