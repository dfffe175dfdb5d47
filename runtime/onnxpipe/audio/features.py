"""Audio feature extractors built from preprocessor_config.json, equal to transformers' (numpy only).

- Wav2Vec2FeatureExtractor (also HuBERT, WavLM, Data2VecAudio, SEW ...): raw samples, optionally normalized
  to zero mean and unit variance over the real (unpadded) samples, padded with `padding_value`.
- WhisperFeatureExtractor: log-mel spectrogram of the clip padded or cut to `chunk_length` seconds (mel.py).
- ASTFeatureExtractor (Audio Spectrogram Transformer): kaldi-style log mel filter bank (kaldi.py), padded with
  zero frames or cut to `max_length` frames, then scaled by the dataset mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from onnxpipe.audio.kaldi_fbank import FRAME_LENGTH, kaldi_mel_filters, log_mel_fbank
from onnxpipe.audio.whisper_mel import log_mel_spectrogram, mel_filter_bank
from onnxpipe.errors import InvalidInputError, MissingModelFileError

EPSILON = 1e-7  # transformers' zero_mean_unit_var_norm adds it to the variance


def normalize(values: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance (float32), as Wav2Vec2FeatureExtractor's do_normalize."""
    values = values.astype(np.float32, copy=False)
    return (values - values.mean()) / np.sqrt(values.var() + EPSILON)


class FromConfig:
    """`from_config`: an extractor built from the fields of a preprocessor_config.json that its dataclass declares,
    after `check_config` refused the settings it does not compute."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], where: str = "preprocessor_config.json") -> Any:
        """The extractor a preprocessor_config.json describes (its fields of this class; the rest is ignored)."""
        cls.check_config(config, where)
        names = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
        return cls(**{k: v for k, v in config.items() if k in names and v is not None})

    @staticmethod
    def check_config(config: Mapping[str, Any], where: str) -> None:
        """Raise MissingModelFileError for settings this extractor does not compute (none by default)."""


@dataclass(frozen=True)
class Wav2Vec2Features(FromConfig):
    """Wav2Vec2FeatureExtractor: `input_values` (and `attention_mask` when the config asks for one)."""

    sampling_rate: int = 16000
    do_normalize: bool = True
    padding_value: float = 0.0
    return_attention_mask: bool = False

    @staticmethod
    def check_config(config: Mapping[str, Any], where: str) -> None:
        """Raw-waveform models take one value per sample."""
        if int(config.get("feature_size", 1)) != 1:
            raise MissingModelFileError(f"{where} sets feature_size={config['feature_size']}; raw-waveform models take 1.")

    def __call__(self, clips: Sequence[np.ndarray], attention_mask: Optional[bool] = None) -> dict[str, np.ndarray]:
        """Feature each clip on its own (normalized over its own samples), then right-pad to the longest."""
        want_mask = self.return_attention_mask if attention_mask is None else attention_mask
        longest = max(len(c) for c in clips)
        values = np.full((len(clips), longest), self.padding_value, dtype=np.float32)
        mask = np.zeros((len(clips), longest), dtype=np.int64)
        for row, clip in enumerate(clips):
            values[row, : len(clip)] = normalize(clip) if self.do_normalize else clip
            mask[row, : len(clip)] = 1
        return {"input_values": values, "attention_mask": mask} if want_mask else {"input_values": values}


@dataclass(frozen=True)
class WhisperFeatures(FromConfig):
    """WhisperFeatureExtractor: `input_features` (batch, feature_size, frames) of clips padded/cut to 30 s."""

    feature_size: int = 80
    sampling_rate: int = 16000
    hop_length: int = 160
    chunk_length: int = 30
    n_fft: int = 400
    padding_value: float = 0.0
    return_attention_mask: bool = False

    @staticmethod
    def check_config(config: Mapping[str, Any], where: str) -> None:
        """transformers draws dither noise when `dither` is set; onnxpipe computes the noise-free features only."""
        if float(config.get("dither", 0.0) or 0.0) != 0.0:
            raise MissingModelFileError(f"{where} sets dither={config['dither']}; onnxpipe's Whisper features take dither 0 only.")

    @property
    def n_samples(self) -> int:
        """Samples in one window of `chunk_length` seconds (480000 for Whisper)."""
        return self.chunk_length * self.sampling_rate

    @property
    def filters(self) -> np.ndarray:
        return _mel_filters(self.n_fft, self.feature_size, self.sampling_rate)

    def __call__(
        self, clips: Sequence[np.ndarray], truncation: bool = True, attention_mask: Optional[bool] = None
    ) -> dict[str, np.ndarray]:
        """Pad every clip with `padding_value` to `chunk_length` seconds (cut longer ones when `truncation`), or,
        without truncation, to the longest clip when that is longer; then the log-mel features of each."""
        longest = max(len(c) for c in clips)
        length = self.n_samples if truncation else max(self.n_samples, longest)
        padded = np.full((len(clips), length), self.padding_value, dtype=np.float32)
        mask = np.zeros((len(clips), length), dtype=np.int64)
        for row, clip in enumerate(clips):
            kept = clip[:length]
            padded[row, : len(kept)] = kept
            mask[row, : len(kept)] = 1
        features = np.stack([log_mel_spectrogram(p, self.filters, self.n_fft, self.hop_length) for p in padded])
        result = {"input_features": features}
        want_mask = self.return_attention_mask if attention_mask is None else attention_mask
        if want_mask:
            frames = mask[:, :: self.hop_length]
            result["attention_mask"] = frames[:, :-1] if length % self.hop_length else frames
        return result


@dataclass(frozen=True)
class ASTFeatures(FromConfig):
    """ASTFeatureExtractor: `input_values` (batch, max_length frames, num_mel_bins)."""

    num_mel_bins: int = 128
    sampling_rate: int = 16000
    max_length: int = 1024
    do_normalize: bool = True
    mean: float = -4.2677393
    std: float = 4.5689974

    def __call__(self, clips: Sequence[np.ndarray], attention_mask: Optional[bool] = None) -> dict[str, np.ndarray]:
        """Each clip's filter bank, zero-padded or cut to max_length frames, then (x - mean) / (2 std)."""
        filters = kaldi_mel_filters(self.num_mel_bins, self.sampling_rate)
        batch = np.zeros((len(clips), self.max_length, self.num_mel_bins), dtype=np.float32)
        for row, clip in enumerate(clips):
            if len(clip) < FRAME_LENGTH:
                raise InvalidInputError(
                    f"A clip of {len(clip)} samples is shorter than one {FRAME_LENGTH}-sample analysis frame of this "
                    f"spectrogram model ({1000 * FRAME_LENGTH / self.sampling_rate:.0f} ms); pass a longer clip."
                )
            fbank = log_mel_fbank(clip, filters)[: self.max_length]
            batch[row, : len(fbank)] = fbank
        if self.do_normalize:
            batch = ((batch - np.float32(self.mean)) / np.float32(self.std * 2)).astype(np.float32)
        return {"input_values": batch}


_FILTERS: dict[tuple[int, int, int], np.ndarray] = {}


def _mel_filters(n_fft: int, feature_size: int, sampling_rate: int) -> np.ndarray:
    key = (n_fft, feature_size, sampling_rate)
    if key not in _FILTERS:
        _FILTERS[key] = mel_filter_bank(1 + n_fft // 2, feature_size, sampling_rate)
    return _FILTERS[key]


FeatureExtractor = Union[Wav2Vec2Features, WhisperFeatures, ASTFeatures]

# feature_extractor_type -> the extractor that computes it (the wav2vec2 family all use Wav2Vec2FeatureExtractor).
# Adding one: a frozen dataclass with FromConfig, computing transformers' features in numpy, and a row here.
FEATURE_EXTRACTORS: dict[str, type[FromConfig]] = {
    "Wav2Vec2FeatureExtractor": Wav2Vec2Features, "WhisperFeatureExtractor": WhisperFeatures, "ASTFeatureExtractor": ASTFeatures,
}


def feature_extractor_from_config(config: Mapping[str, Any], where: str = "preprocessor_config.json") -> FeatureExtractor:
    """The extractor a preprocessor_config.json describes; MissingModelFileError naming the type otherwise."""
    kind = config.get("feature_extractor_type")
    if kind not in FEATURE_EXTRACTORS:
        raise MissingModelFileError(
            f"{where} has feature_extractor_type {kind!r}; onnxpipe computes audio features for "
            f"{', '.join(sorted(FEATURE_EXTRACTORS))}; others are not implemented yet."
        )
    return FEATURE_EXTRACTORS[kind].from_config(config, where)
