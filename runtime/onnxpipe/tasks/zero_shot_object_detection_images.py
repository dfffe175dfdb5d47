"""OWL-ViT and OWLv2 image preprocessing in numpy, and how their boxes map back to the original image.

OWL-ViT stretches the image to a fixed size (PIL, as ViT). OWLv2 pads it to a square with grey (0.5, after
rescaling) at the bottom and right, then resizes as scikit-image does: a Gaussian anti-aliasing blur when
shrinking (scipy.ndimage.gaussian_filter, mode "mirror") and bilinear zoom (scipy.ndimage.zoom, order 1,
grid_mode=True), clipped to the input's range. Its boxes are relative to the padded square, so they scale by the
longer side in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from onnxpipe.errors import InvalidInputError, MissingModelFileError
from onnxpipe.vision.images import ImageProcessor

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
# transformers' defaults for settings a preprocessor_config.json may leave out
OWLVIT_DEFAULTS: dict[str, Any] = {
    "size": {"height": 768, "width": 768}, "resample": 3, "do_center_crop": False,
    "crop_size": {"height": 768, "width": 768}, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
}
OWLV2_DEFAULTS: dict[str, Any] = {
    "size": {"height": 960, "width": 960}, "do_pad": True, "do_resize": True, "do_rescale": True,
    "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
}
PROCESSORS = ("OwlViTImageProcessor", "Owlv2ImageProcessor")
GAUSSIAN_TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter's default: the kernel reaches 4 standard deviations


def _reflect_indices(index: np.ndarray, length: int) -> np.ndarray:
    """Indices past either end folded back as scipy's "mirror" mode does (d c b | a b c d | c b a)."""
    if length == 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    index = np.abs(index) % period
    return np.where(index >= length, period - index, index)


def gaussian_weights(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, weights) of scipy.ndimage.gaussian_filter1d's kernel: radius int(4 sigma + 0.5), normalized."""
    radius = int(GAUSSIAN_TRUNCATE * sigma + 0.5)
    taps = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 / (sigma * sigma) * taps.astype(np.float64) ** 2)
    return taps, weights / weights.sum()


def linear_sampling(length: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, frac) of scipy.ndimage.zoom(order=1, mode="mirror", grid_mode=True) along one axis: output
    pixel k reads input coordinate (k + 0.5) * (length / size) - 0.5, folded back at the edges."""
    coords = (np.arange(size, dtype=np.float64) + 0.5) * (length / size) - 0.5
    if length > 1:
        period = 2.0 * (length - 1)
        coords = np.abs(coords) % period
        coords = np.where(coords > length - 1, period - coords, coords)
    else:
        coords = np.zeros_like(coords)
    low = np.floor(coords).astype(np.int64)
    return low, _reflect_indices(low + 1, length), coords - low


def _resample_axis(source: np.ndarray, size: int, axis: int) -> np.ndarray:
    """One axis of Owlv2ImageProcessor.resize (float32 or float64 in, float64 out): where it shrinks, the Gaussian blur of scipy's
    gaussian_filter (mode "mirror", sigma (factor - 1) / 2, rounded to float32 as scipy writes it), computed only
    at the input positions the bilinear zoom then reads; then that zoom."""
    length = source.shape[axis]
    low, high, frac = linear_sampling(length, size)
    sigma = max(0.0, (length / size - 1) / 2)
    if sigma > 1e-15:  # scipy skips axes whose sigma is (nearly) zero
        needed, inverse = np.unique(np.concatenate([low, high]), return_inverse=True)
        taps, weights = gaussian_weights(sigma)
        shape = list(source.shape)
        shape[axis] = len(needed)
        blurred, tap = np.zeros(shape, dtype=np.float64), np.empty(shape, dtype=source.dtype)
        for offset, weight in zip(taps, weights):
            np.take(source, _reflect_indices(needed + offset, length), axis=axis, out=tap)
            blurred += weight * tap
        source = blurred.astype(np.float32)
        low, high = inverse[:size], inverse[size:]
    weights_shape = [1] * source.ndim
    weights_shape[axis] = size
    frac = frac.reshape(weights_shape)
    return np.take(source, low, axis=axis) * (1.0 - frac) + np.take(source, high, axis=axis) * frac


def owlv2_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Owlv2ImageProcessor.resize on an HWC float32 array: anti-aliasing blur where it shrinks, bilinear zoom,
    clipped to the input's value range; float32 out. Blur and zoom are linear and act on one axis each, so they
    run axis by axis, which equals scipy's blur-both-then-zoom up to float32 rounding."""
    resized = _resample_axis(_resample_axis(image, height, 0), width, 1).astype(np.float32)
    return np.clip(resized, image.min(), image.max())


@dataclass(frozen=True)
class OwlImageProcessor:
    """The preprocessing of an OWL-ViT or OWLv2 preprocessor_config.json and its box scaling."""

    kind: str
    config: dict[str, Any]
    stretch: Optional[ImageProcessor]  # OWL-ViT: the fixed-size PIL resize of ViT's processor

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str = "preprocessor_config.json") -> OwlImageProcessor:
        """The processor of `config`; MissingModelFileError naming the types it reads otherwise."""
        kind = str(config.get("image_processor_type") or config.get("feature_extractor_type") or "")
        kind = kind.replace("FeatureExtractor", "ImageProcessor").removesuffix("Fast")
        if kind not in PROCESSORS:
            raise MissingModelFileError(
                f"{where} names image processor {kind or 'none'!r}; zero-shot-object-detection reads "
                f"{', '.join(PROCESSORS)} (OWL-ViT, OWLv2)."
            )
        given = {k: v for k, v in config.items() if v is not None}
        if kind == "OwlViTImageProcessor":
            settings = {**OWLVIT_DEFAULTS, **given}
            stretch = ImageProcessor.from_config({**settings, "image_processor_type": "ViTImageProcessor"}, where)
            return cls(kind, settings, stretch)
        settings = {**OWLV2_DEFAULTS, **given}
        size = settings["size"]
        if isinstance(size, int):
            settings["size"] = {"height": size, "width": size}
        elif not (isinstance(size, dict) and "height" in size and "width" in size):
            raise MissingModelFileError(f"{where}: size {size!r} is not one OWLv2 resizes with; it reads height+width.")
        return cls(kind, settings, None)

    def preprocess(self, image: Any) -> np.ndarray:
        """pixel_values (C, H, W) float32 of one RGB PIL image."""
        if self.stretch is not None:
            return self.stretch.preprocess(image)
        if image.width == 1 and image.height == 1:
            raise InvalidInputError(
                "The image is 1x1 pixel: transformers' image processors cannot tell its channel axis and fail. "
                "Pass an image of at least 2x2 pixels."
            )
        values = np.asarray(image)
        if self.config["do_rescale"] and values.dtype == np.uint8:  # transformers' float64 product, by table
            values = (np.arange(256, dtype=np.float64) * float(self.config["rescale_factor"])).astype(np.float32)[values]
        elif self.config["do_rescale"]:
            values = (values.astype(np.float64) * float(self.config["rescale_factor"])).astype(np.float32)
        values = values.astype(np.float32, copy=False)
        if self.config["do_pad"]:
            side = max(values.shape[0], values.shape[1])
            padding = ((0, side - values.shape[0]), (0, side - values.shape[1]), (0, 0))
            values = np.pad(values, padding, constant_values=np.float32(0.5))
        if self.config["do_resize"]:
            values = owlv2_resize(values, int(self.config["size"]["height"]), int(self.config["size"]["width"]))
        if self.config["do_normalize"]:
            mean = np.array(self.config["image_mean"], dtype=np.float32)
            std = np.array(self.config["image_std"], dtype=np.float32)
            values = (values - mean) / std
        return np.ascontiguousarray(values.astype(np.float32, copy=False).transpose(2, 0, 1))

    def box_scale(self, height: int, width: int) -> np.ndarray:
        """What relative (x0, y0, x1, y1) boxes are multiplied by to give original pixels: (w, h, w, h), or the
        longer side four times where the image was padded to a square (OWLv2, as transformers' _scale_boxes)."""
        if self.kind == "Owlv2ImageProcessor":  # transformers scales by the longer side whether or not it padded
            side = max(height, width)
            return np.array([side, side, side, side], dtype=np.float32)
        return np.array([width, height, width, height], dtype=np.float32)
