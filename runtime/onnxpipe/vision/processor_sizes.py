"""The resize sizes and paddings of the dense-prediction image processors (DPT, GLPN, Swin2SR), as transformers 4.57
computes them; images.py applies them in its processor steps."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from onnxpipe.errors import InvalidInputError


def _multiple_of(value: float, multiple: int) -> int:
    """DPT's constrain_to_multiple_of (no bounds): Python's round(value / multiple) * multiple."""
    return int(round(value / multiple) * multiple)


def dpt_size(height: int, width: int, size: Mapping[str, int], keep_aspect_ratio: bool, multiple: int) -> tuple[int, int]:
    """DPTImageProcessor's get_resize_output_image_size: the target (height, width), or with keep_aspect_ratio the
    scale closest to 1 applied to both sides; each side rounded to a multiple of `multiple`."""
    scale_h, scale_w = int(size["height"]) / height, int(size["width"]) / width
    if keep_aspect_ratio:
        if abs(1 - scale_w) < abs(1 - scale_h):
            scale_h = scale_w
        else:
            scale_w = scale_h
    new_h, new_w = _multiple_of(scale_h * height, multiple), _multiple_of(scale_w * width, multiple)
    if new_h < 1 or new_w < 1:
        raise InvalidInputError(
            f"A {width}x{height} image would be resized to {new_w}x{new_h} pixels (size {dict(size)}, "
            f"keep_aspect_ratio={keep_aspect_ratio}, multiples of {multiple}): its aspect ratio is too extreme for "
            "this model. Crop or pad it first."
        )
    return new_h, new_w


def glpn_size(height: int, width: int, divisor: int) -> tuple[int, int]:
    """GLPNImageProcessor's resize: each side rounded down to a multiple of size_divisor."""
    new_h, new_w = height // divisor * divisor, width // divisor * divisor
    if new_h < 1 or new_w < 1:
        raise InvalidInputError(
            f"A {width}x{height} image is smaller than this model's size_divisor ({divisor} pixels) on one side: "
            f"GLPN resizes each side down to a multiple of {divisor}. Pass an image of at least {divisor}x{divisor} pixels."
        )
    return new_h, new_w


def center_pad(values: np.ndarray, divisor: int) -> np.ndarray:
    """DPT's pad_image on an HWC array: zeros around it, split evenly (the extra pixel after), up to multiples of
    `divisor`."""
    pads = []
    for side in values.shape[:2]:
        extra = math.ceil(side / divisor) * divisor - side
        pads.append((extra // 2, extra - extra // 2))
    return np.pad(values, (*pads, (0, 0)))


def symmetric_pad(values: np.ndarray, divisor: int) -> np.ndarray:
    """Swin2SR's pad on an HWC array: mirrored at the bottom and right up to the next multiple of `divisor` (a full
    `divisor` more when a side already is one, as transformers computes it)."""
    height, width = values.shape[:2]
    pad_h, pad_w = (height // divisor + 1) * divisor - height, (width // divisor + 1) * divisor - width
    return np.pad(values, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")


def model_padding(values: np.ndarray, mode: str, config: Mapping[str, Any]) -> np.ndarray:
    """The padding a processor adds after rescaling / normalizing: DPT's optional center padding (do_pad with
    size_divisor), Swin2SR's symmetric padding (do_pad, size_divisor or the older pad_size); others none."""
    if mode == "dpt" and config.get("do_pad") and config.get("size_divisor"):
        return center_pad(values, int(config["size_divisor"]))
    if mode == "swin2sr" and config.get("do_pad", True):
        return symmetric_pad(values, int(config.get("size_divisor") or config.get("pad_size") or 8))
    return values
