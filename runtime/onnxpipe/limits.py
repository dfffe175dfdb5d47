"""Resource limits on one call: how many beams, returned sequences, new and prompt tokens, seconds of audio, which
sampling rates, how many image pixels and how many inputs a call may ask for. Checked before anything is allocated.

`Limits()` holds safe defaults for a server (`onnxpipe serve` applies them, each settable by a flag or a `--limits`
JSON file); `Limits.unlimited()` is the library's default (no limit beyond what the model itself takes), and
`pipeline(..., limits=Limits(...))` opts in. Each check raises InvalidOptionError (options) or InvalidInputError
(inputs) naming the value, the limit, and the setting that changes it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from onnxpipe.errors import InvalidInputError, InvalidOptionError

#: Pillow's own decompression-bomb guard (PIL.Image.MAX_IMAGE_PIXELS), which image inputs already pass
PIL_MAX_IMAGE_PIXELS = 89_478_485


@dataclass(frozen=True)
class Limits:
    """What one call may ask for; None turns a limit off."""

    max_num_beams: Optional[int] = 8
    max_num_return_sequences: Optional[int] = 8
    max_new_tokens: Optional[int] = 1024
    #: prompt tokens of a generation model; None: the model's own limit (its position table)
    max_input_tokens: Optional[int] = None
    #: seconds of audio per input, at the model's sampling rate (after resampling)
    max_audio_seconds: Optional[float] = 600.0
    min_sample_rate: Optional[int] = 1000
    max_sample_rate: Optional[int] = 384_000
    max_image_pixels: Optional[int] = PIL_MAX_IMAGE_PIXELS
    max_inputs_per_request: Optional[int] = 2048

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            whole = spec.name != "max_audio_seconds"
            if value is not None and (not number or not value > 0 or math.isinf(value) or (whole and int(value) != value)):
                raise ValueError(
                    f"{spec.name} ({FLAGS[spec.name]}) must be a positive {'int' if whole else 'number'} or None "
                    f"(no limit), got {value!r}."
                )
        low, high = self.min_sample_rate, self.max_sample_rate
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_sample_rate ({low}) must not be above max_sample_rate ({high}).")

    @classmethod
    def unlimited(cls) -> Limits:
        """No limit at all: the library's default, where the caller owns the process."""
        return cls(**{spec.name: None for spec in dataclasses.fields(cls)})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base: Optional[Limits] = None) -> Limits:
        """`base` (default: the server defaults) with `values` (field names, e.g. from a JSON file) applied;
        ValueError naming unknown keys."""
        names = [spec.name for spec in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown limit(s) {unknown}; the limits are: {', '.join(names)}.")
        return dataclasses.replace(base or cls(), **dict(values))

    def as_dict(self) -> dict[str, Any]:
        """Every limit by name (None: no limit), as /info shows them."""
        return dataclasses.asdict(self)

    # -- checks ------------------------------------------------------------------------------------
    def check_generation(self, num_beams: Optional[int] = None, num_return_sequences: Optional[int] = None,
                         max_new_tokens: Optional[int] = None, max_length: Optional[int] = None,
                         prompt_allowance: Optional[int] = None) -> None:
        """Refuse decoding options a caller asked for past the limits (None: not asked for; the model's and the
        pipeline's own defaults are not checked). `max_length` (a total length, given without max_new_tokens) may
        pass max_new_tokens by the prompt's allowance (max_input_tokens, else `prompt_allowance`: the model's)."""
        if num_beams is not None:
            _at_most(self, "num_beams", num_beams, "max_num_beams", "ask for fewer beams", InvalidOptionError)
        if num_return_sequences is not None:
            _at_most(self, "num_return_sequences", num_return_sequences, "max_num_return_sequences",
                     "ask for fewer sequences", InvalidOptionError)
        if max_new_tokens is not None:
            _at_most(self, "max_new_tokens", max_new_tokens, "max_new_tokens", "ask for fewer new tokens", InvalidOptionError)
        elif max_length is not None and self.max_new_tokens is not None:
            allowed = self.max_new_tokens + (self.max_input_tokens or prompt_allowance or 0)
            if max_length > allowed:
                raise InvalidOptionError(
                    f"max_length={max_length} is above the limit of {allowed} (the prompt plus max_new_tokens "
                    f"{self.max_new_tokens}: {FLAGS['max_new_tokens']}); pass max_new_tokens <= {self.max_new_tokens} instead."
                )

    def check_input_tokens(self, count: int) -> None:
        """Refuse a prompt of more than max_input_tokens tokens (the model's own limit is checked by the model)."""
        _at_most(self, "the prompt's token count", count, "max_input_tokens",
                 "shorten the prompt or pass truncation=True", InvalidInputError)

    def check_inputs(self, count: int) -> None:
        """Refuse a call on more than max_inputs_per_request inputs."""
        _at_most(self, "the number of inputs", count, "max_inputs_per_request",
                 "split them over several requests", InvalidInputError)

    def check_sample_rate(self, rate: Any) -> None:
        """Refuse a sampling rate outside [min_sample_rate, max_sample_rate] Hz."""
        if self.min_sample_rate is not None and rate < self.min_sample_rate:
            raise InvalidInputError(
                f"sampling_rate={rate} Hz is below the limit of {self.min_sample_rate} Hz (min_sample_rate, "
                f"{FLAGS['min_sample_rate']}); pass the audio's real rate."
            )
        _at_most(self, "sampling_rate", rate, "max_sample_rate", "pass the audio's real rate", InvalidInputError)

    def check_audio(self, samples: int, rate: Any) -> None:
        """Refuse `samples` at `rate` Hz (before resampling: the length in seconds is the same after) when the
        rate is out of range or the clip is longer than max_audio_seconds."""
        self.check_sample_rate(rate)
        if self.max_audio_seconds is not None and samples > self.max_audio_seconds * rate:
            raise InvalidInputError(
                f"the audio lasts {samples / rate:.6g} s ({samples} samples at {rate} Hz), above the limit of "
                f"{self.max_audio_seconds:g} s (max_audio_seconds, {FLAGS['max_audio_seconds']}); send a shorter clip."
            )

    def check_output_audio(self, samples: int, rate: int) -> None:
        """Refuse to synthesize more than max_audio_seconds of audio (text-to-audio, checked once the length is
        known and before the waveform is computed)."""
        if self.max_audio_seconds is not None and samples > self.max_audio_seconds * rate:
            raise InvalidInputError(
                f"the speech would last {samples / rate:.6g} s ({samples} samples at {rate} Hz), above the limit of "
                f"{self.max_audio_seconds:g} s (max_audio_seconds, {FLAGS['max_audio_seconds']}); send a shorter text "
                "or raise the speaking_rate."
            )

    def check_image(self, width: int, height: int) -> None:
        """Refuse an image of more than max_image_pixels pixels."""
        _at_most(self, f"a {width}x{height} image's pixel count", width * height, "max_image_pixels",
                 "send a smaller image", InvalidInputError)


#: each limit's `onnxpipe serve` flag
FLAGS = {
    "max_num_beams": "--max-num-beams",
    "max_num_return_sequences": "--max-num-return-sequences",
    "max_new_tokens": "--max-new-tokens",
    "max_input_tokens": "--max-input-tokens",
    "max_audio_seconds": "--max-audio-seconds",
    "min_sample_rate": "--min-sample-rate",
    "max_sample_rate": "--max-sample-rate",
    "max_image_pixels": "--max-image-pixels",
    "max_inputs_per_request": "--max-inputs-per-request",
}

UNLIMITED = Limits.unlimited()


def _at_most(limits: Limits, what: str, value: Any, field: str, fix: str, error: type) -> None:
    limit = getattr(limits, field)
    if limit is not None and value > limit:
        name = f"{what}={value}" if what.isidentifier() else f"{what} ({value})"
        unit = " Hz" if field.endswith("sample_rate") else ""
        raise error(f"{name}{unit} is above the limit of {limit}{unit} ({field}, {FLAGS[field]}); {fix}.")
