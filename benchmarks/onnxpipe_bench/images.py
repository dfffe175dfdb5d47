"""Deterministic benchmark pictures: smooth gradients with noise and shapes, PNG-encoded and sent as base64.

Every engine gets the same pictures. The worker decodes them to PIL images before timing, so timed calls
measure each pipeline's own pre-processing (resize, normalize) and inference, not PNG decoding.
"""

from __future__ import annotations

import base64
import io

import numpy as np


def picture(height: int, width: int, seed: int) -> np.ndarray:
    """An HxWx3 uint8 picture: a seed-dependent colour gradient, a few filled rectangles and mild noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xs / width, ys / height, (xs + ys) / (width + height)], axis=-1)
    image = base[..., rng.permutation(3)] * 200 + 20
    for _ in range(4):
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        image[top : top + height // 4, left : left + width // 4] = rng.integers(0, 256, 3)
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_images(count: int, height: int, width: int, seed: int = 0) -> list[str]:
    """`count` different pictures as base64 PNG strings (JSON-safe), the same on every call."""
    from PIL import Image

    encoded = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(picture(height, width, seed * 1000 + i)).save(buffer, format="PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return encoded


def decode_images(items: list) -> list:
    """The PIL images of base64 PNG strings (what the worker stores before timing); a dict input (visual question
    answering: {"image": base64, "question": ...}) keeps its other keys, with its image decoded."""
    return [{**item, "image": _decode(item["image"])} if isinstance(item, dict) else _decode(item) for item in items]


def _decode(item: str) -> object:
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(item)))
    image.load()
    return image
