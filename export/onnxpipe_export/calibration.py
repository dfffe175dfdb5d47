"""Texts that calibrate int8 smoothing: one unpadded batch each, distinct from the validation samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .audio_samples import build_audio_calibration
from .document_samples import build_document_calibration
from .image_samples import build_image_calibration
from .samples import Batch, load_tokenizer, max_length

# varied in length, language and register; none of them is a validation sample, so validation figures
# measure texts the calibration never saw
CALIBRATION_TEXTS: tuple[str, ...] = (
    "Thanks!",
    "yes",
    "How do I reset my password?",
    "The service was slow but the staff were friendly.",
    "Stock markets fell sharply after the interest rate announcement on Tuesday.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Der Zug nach München fährt um acht Uhr ab.",
    "La réunion est reportée à jeudi prochain, désolé pour le dérangement.",
    "北京是中国的首都。",
    "Error 404: the page you requested could not be found (see /help).",
    "I can't believe it's already December... where did the year go?",
    "After three hours of waiting at the gate, the airline finally told us that the flight had been cancelled "
    "and that the next available seat would be on a plane leaving the following afternoon.",
    "Q: What is the capital of Australia? A: Canberra, not Sydney.",
    "BREAKING: Local team wins championship for the first time in 50 years",
)


def build_calibration(source: Path, config: dict[str, Any], modality: str = "text") -> list[Batch]:
    """Tokenize each calibration text on its own (no padding) with the checkpoint's tokenizer; image
    models get generated pictures, audio models generated clips, one per batch."""
    if modality == "audio":
        return build_audio_calibration(source)
    if modality == "document":
        return build_document_calibration(source, config)
    if modality != "text":
        return build_image_calibration(source, modality)
    tokenizer = load_tokenizer(source)
    limit = max_length(tokenizer, config)
    return [
        Batch(dict(tokenizer([text], truncation=True, max_length=limit, return_tensors="np")))
        for text in CALIBRATION_TEXTS
    ]
