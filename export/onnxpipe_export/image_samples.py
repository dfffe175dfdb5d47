"""Image samples for validating and calibrating vision exports: generated pictures, processed by the
checkpoint's own transformers image processor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConversionError, first_line
from .samples import Batch, Samples, load_tokenizer

# (height, width) of each validation batch; two different pictures per batch so batches need no padding
# (DETR / YOLOS graphs take no pixel_mask)
VALIDATION_SIZES: tuple[tuple[int, int], ...] = ((64, 48), (40, 96), (57, 57))
CALIBRATION_SIZES: tuple[tuple[int, int], ...] = ((48, 64), (96, 40), (50, 50), (72, 30))
# captions every picture is scored against, for image-text models (CLIP)
CAPTIONS: tuple[str, ...] = ("a photo of a cat.", "a diagram", "This is a photo of a red car on a street.", "snow")
# questions asked about the pictures, one per picture, for visual question answering (ViLT)
QUESTIONS: tuple[str, ...] = (
    "What color is the square?", "how many?", "Is there a cat in this picture, or only a dog on the grass?",
    "where", "Is it raining outside today?", "What is written on the red sign near the door?",
)


def generated_image(height: int, width: int, seed: int) -> np.ndarray:
    """An HWC uint8 picture: a colour gradient, a bright rectangle and noise, varied by `seed`."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 2 * np.pi, size=3)
    image = np.stack([127 + 100 * np.sin(x / max(width, 1) * 6 + y / max(height, 1) * 3 + p) for p in phase], axis=-1)
    top, left = rng.integers(0, max(height // 2, 1)), rng.integers(0, max(width // 2, 1))
    image[top : top + height // 3, left : left + width // 3] = rng.uniform(0, 255, size=3)
    image += rng.normal(0, 12, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def load_image_processor(source: Path) -> Any:
    """The checkpoint's transformers image processor (the slow one, as transformers' pipelines use here)."""
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(str(source))
    except Exception as exc:
        raise ConversionError(f"Cannot load the image processor of {str(source)!r}: {first_line(exc)}") from exc


def _batch(processor: Any, images: list[np.ndarray], captions: dict[str, np.ndarray]) -> Batch:
    from PIL import Image

    encoded = processor(images=[Image.fromarray(i) for i in images], return_tensors="np")
    pixels = {k: np.asarray(v) for k, v in encoded.items() if k in ("pixel_values", "pixel_mask")}
    return Batch({**pixels, **captions})


def _tokenizer(source: Path, modality: str) -> Any:
    """The checkpoint's tokenizer, or None for image-only models."""
    return None if modality == "image" else load_tokenizer(source)


def _texts(tokenizer: Any, modality: str, first: int, count: int) -> dict[str, np.ndarray]:
    """The text side of a batch of `count` pictures, tokenized (padded): every caption for image-text models
    (CLIP), questions first..first+count for image-question models (ViLT), nothing for image-only models."""
    if tokenizer is None:
        return {}
    texts = list(CAPTIONS) if modality == "image-text" else [
        QUESTIONS[(first + i) % len(QUESTIONS)] for i in range(count)
    ]
    return dict(tokenizer(texts, padding=True, truncation=True, return_tensors="np"))


def build_image_samples(source: Path, modality: str = "image") -> Samples:
    """Validation batches: for each size, two generated pictures of that size (scored against CAPTIONS, or
    each asked one of QUESTIONS)."""
    processor, tokenizer = load_image_processor(source), _tokenizer(source, modality)
    batches = [
        _batch(
            processor, [generated_image(h, w, 2 * i), generated_image(h, w, 2 * i + 1)],
            _texts(tokenizer, modality, 2 * i, 2),
        )
        for i, (h, w) in enumerate(VALIDATION_SIZES)
    ]
    sizes = ", ".join(f"{h}x{w}" for h, w in VALIDATION_SIZES)
    text = {"image": "", "image-text": f", against {len(CAPTIONS)} captions", "image-question": ", one question each"}
    return Samples(
        tuple(batches), f"{2 * len(batches)} generated images in {len(batches)} batches ({sizes}){text[modality]}"
    )


def build_image_calibration(source: Path, modality: str = "image") -> list[Batch]:
    """One generated picture per calibration batch, distinct from the validation pictures (and questions); pictures
    the processor cannot take are left out (GLPN rounds sides down to multiples of 32: 30 pixels become 0)."""
    processor, tokenizer = load_image_processor(source), _tokenizer(source, modality)
    batches = []
    for i, (h, w) in enumerate(CALIBRATION_SIZES):
        try:
            batches.append(_batch(processor, [generated_image(h, w, 100 + i)], _texts(tokenizer, modality, 3 + i, 1)))
        except ValueError:
            continue
    if not batches:
        raise ConversionError(f"The image processor of {str(source)!r} takes none of the calibration pictures {CALIBRATION_SIZES}.")
    return batches
