"""Pix2Struct's image processor (transformers 4.57's Pix2StructImageProcessor, captioning checkpoints) in numpy.

Per-image standardization (the mean and std over all pixels, the std at least 1/sqrt(pixels), as TensorFlow's
per_image_standardization), a resize to the largest grid of patches that fits `max_patches` keeping the aspect ratio
(torch's bilinear interpolation with antialias, emulated in float32 step by step: the same weights and the same
fused multiply-adds), patches flattened row by row with their 1-based row and column ids in front, zero rows up to
`max_patches`, and an attention mask of the rows that are not padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from onnxpipe.errors import InvalidInputError, MissingModelFileError

PROCESSOR_TYPE = "Pix2StructImageProcessor"
F32 = np.float32
FMA_TAPS = 4  # torch's CPU kernel contracts the short sums into fused multiply-adds


def _f32(value: Any) -> np.float32:
    return np.float32(value)


def _axis_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch's antialiased bilinear taps along one axis, computed as its CPU kernel does in float32:
    (first input index (out,), tap count (out,), weights (out, taps))."""
    scale = _f32(F32(in_size) / F32(out_size))
    antialias = scale >= 1.0
    support = _f32(1.0 * float(scale)) if antialias else _f32(1.0)
    taps = int(math.ceil(float(support))) * 2 + 1
    invscale = _f32(1.0 / float(scale)) if antialias else _f32(1.0)
    starts = np.zeros(out_size, dtype=np.int64)
    sizes = np.zeros(out_size, dtype=np.int64)
    weights = np.zeros((out_size, taps), dtype=F32)
    for i in range(out_size):
        center = _f32(float(scale) * (i + 0.5))
        xmin = max(int(float(_f32(center - support)) + 0.5), 0)
        xsize = min(int(float(_f32(center + support)) + 0.5), in_size) - xmin
        xsize = min(max(xsize, 0), taps)
        total = _f32(0.0)
        row = np.zeros(taps, dtype=F32)
        for j in range(xsize):
            x = abs(_f32((float(_f32(F32(j + xmin) - center)) + 0.5) * float(invscale)))
            w = _f32(F32(1.0) - x) if x < 1.0 else _f32(0.0)
            row[j] = w
            total = _f32(total + w)
        if total != 0.0:
            row[:xsize] = row[:xsize] / total
        starts[i], sizes[i], weights[i] = xmin, xsize, row
    return starts, sizes, weights


def _resample_axis(values: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    """One separable pass of the antialiased bilinear resize over `axis` of a float32 array: each output is
    x[start] * w0, then + x[start + j] * wj in order. Outputs of up to FMA_TAPS taps add as fused multiply-adds
    (emulated in float64), longer ones as float32 products and sums: on x86-vnni this equals torch 2.13 bit for bit
    up to 5 taps (upsampling and shrinking by less than 2) and within a float32 rounding or two beyond."""
    in_size = values.shape[axis]
    starts, sizes, weights = _axis_weights(in_size, out_size)
    moved = np.moveaxis(values, axis, -1)
    fused = sizes <= FMA_TAPS
    total = np.zeros(moved.shape[:-1] + (out_size,), dtype=F32)
    for j in range(weights.shape[1]):
        index = np.minimum(starts + j, in_size - 1)
        weight = np.where(j < sizes, weights[:, j], 0).astype(F32)
        picked = moved[..., index]
        exact = picked.astype(np.float64) * weight.astype(np.float64)
        if j == 0:
            total = (picked * weight).astype(F32)
            continue
        with_fma = (exact + total.astype(np.float64)).astype(F32)
        plain = (total + (picked * weight).astype(F32)).astype(F32)
        total = np.where(fused, with_fma, plain)
    return np.moveaxis(total, -1, axis)


def antialiased_bilinear(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True) of a float32 (C, H, W)
    array to (C, height, width): the width pass first, then the height pass, as torch's CPU kernel."""
    out = values.astype(F32, copy=False)
    if out.shape[2] != width:
        out = _resample_axis(out, 2, width)
    if out.shape[1] != height:
        out = _resample_axis(out, 1, height)
    return out


@dataclass(frozen=True)
class Pix2StructProcessor:
    """The settings of a Pix2StructImageProcessor's preprocessor_config.json and its steps."""

    patch_height: int
    patch_width: int
    max_patches: int
    do_normalize: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any], where: str = "preprocessor_config.json") -> Pix2StructProcessor:
        """Read the processor's settings; refuse VQA checkpoints (is_vqa), whose question transformers renders as
        a header onto the image with a font from the hub."""
        if config.get("is_vqa"):
            raise MissingModelFileError(
                f"{where} is a Pix2Struct VQA processor (is_vqa true): transformers renders the question onto the image "
                "with a font it downloads from the hub, which onnxpipe does not do. Only captioning Pix2Struct "
                "checkpoints (is_vqa false, e.g. google/pix2struct-textcaps-base) run in image-to-text."
            )
        patch = config.get("patch_size") or {"height": 16, "width": 16}
        return cls(int(patch["height"]), int(patch["width"]), int(config.get("max_patches") or 2048),
                   bool(config.get("do_normalize", True)))

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """(rows, columns) of patches an image of `height` x `width` is resized to, as transformers picks them."""
        ph, pw, most = self.patch_height, self.patch_width, self.max_patches
        scale = math.sqrt(most * (ph / height) * (pw / width))
        rows = max(min(math.floor(scale * height / ph), most), 1)
        columns = max(min(math.floor(scale * width / pw), most), 1)
        return rows, columns

    def preprocess(self, image: Any) -> dict[str, np.ndarray]:
        """flattened_patches (max_patches, 2 + C*ph*pw) and attention_mask (max_patches,) float32 of one RGB image
        (a PIL image from vision/images.py, the one module that imports Pillow)."""
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[0] in (1, 3):
            width, height = (array.shape[1], array.shape[0]) if array.ndim >= 2 else (array.size, 1)
            raise InvalidInputError(
                f"A {width}x{height} image: transformers' Pix2Struct processor reads an image whose height "
                "is 1 or 3 pixels as channels-first and fails or misreads it. Pass an image at least 4 pixels high."
            )
        values = array.astype(F32)
        if self.do_normalize:
            mean = np.mean(values)
            std = max(np.std(values), 1.0 / math.sqrt(np.prod(values.shape)))
            values = (values - np.array([mean] * 3, dtype=F32)) / np.array([std] * 3, dtype=F32)
        rows, columns = self.grid(values.shape[0], values.shape[1])
        ph, pw = self.patch_height, self.patch_width
        resized = antialiased_bilinear(np.ascontiguousarray(values.transpose(2, 0, 1)), rows * ph, columns * pw)
        channels = resized.shape[0]
        # (C, rows, ph, columns, pw) -> (rows, columns, ph, pw, C): torch's unfold order, channels last
        patches = resized.reshape(channels, rows, ph, columns, pw).transpose(1, 3, 2, 4, 0).reshape(rows * columns, -1)
        row_ids = np.repeat(np.arange(1, rows + 1, dtype=F32), columns)[:, None]
        col_ids = np.tile(np.arange(1, columns + 1, dtype=F32), rows)[:, None]
        result = np.zeros((self.max_patches, 2 + patches.shape[1]), dtype=F32)
        result[: rows * columns] = np.concatenate([row_ids, col_ids, patches], axis=-1)
        mask = (result.sum(axis=-1) != 0).astype(F32)
        return {"flattened_patches": result, "attention_mask": mask}
