"""The batches an export is checked and calibrated on, whatever the modality (`Batch`, `Samples`), and the
checkpoint's tokenizer with the length limit text batches are cut to.

The text, image and audio sample builders (validate.py, calibration.py, image_samples.py, audio_samples.py) all
make these, so they live apart from every builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onnxpipe.validation import batch_mask

from .errors import ConversionError, first_line

# at most this many tokens per text, so validation stays fast on real-size models
MAX_TOKENS = 128


@dataclass(frozen=True)
class Batch:
    """One padded batch of tokenizer output (numpy arrays keyed by input name)."""

    feeds: dict[str, np.ndarray]

    @property
    def mask(self) -> np.ndarray:
        """The attention mask; all ones when the tokenizer gives none (one column per image for image batches)."""
        return batch_mask(self.feeds)


@dataclass(frozen=True)
class Samples:
    """The validation batches and a one-line description for the manifest."""

    batches: tuple[Batch, ...]
    description: str


def max_length(tokenizer: Any, config: dict[str, Any]) -> int:
    """The longest sample in tokens: MAX_TOKENS, or less when the model takes less."""
    limits = [MAX_TOKENS]
    if isinstance(tokenizer.model_max_length, int) and tokenizer.model_max_length < 1_000_000:
        limits.append(tokenizer.model_max_length)
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 2:
        limits.append(positions - 2)  # RoBERTa-style position ids start after the padding index
    return min(limits)


def load_tokenizer(source: Path) -> Any:
    """The checkpoint's transformers tokenizer, with a pad token so batches can be padded."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
    except Exception as exc:
        raise ConversionError(f"Cannot load the tokenizer of {str(source)!r}: {first_line(exc)}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer
