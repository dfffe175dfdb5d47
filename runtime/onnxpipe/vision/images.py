"""Image inputs and preprocessing with numpy + Pillow, driven by preprocessor_config.json as transformers reads it.

`load_image` turns a path, URL, PIL image, numpy array, raw bytes or base64 string into an RGB PIL image
(EXIF orientation applied, then `convert("RGB")`, as transformers' `load_image`). `ImageProcessor` mirrors the
slow transformers image processors (ViT, DeiT, ConvNeXt/ResNet, Segformer, CLIP, BiT/DINOv2, DETR, YOLOS, ViLT, DPT, GLPN,
Swin2SR; the last three's sizes and paddings are in processor_sizes.py): resize through PIL
with the processor's resample filter, center crop, rescale in float64, normalize in float32, channels first.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from dataclasses import dataclass
from math import ceil
from typing import Any, Optional, Sequence

import numpy as np

try:
    import PIL.Image
    import PIL.ImageOps
except ImportError as exc:  # Pillow is the optional `vision` extra
    raise ImportError("Image tasks need Pillow: pip install 'onnxpipe[vision]' (or pip install pillow).") from exc

from onnxpipe.errors import InvalidInputError, MissingModelFileError
from onnxpipe.limits import UNLIMITED, Limits
from onnxpipe.media_sources import FILES_AND_URLS, MediaSources, describe, fetch_url
from onnxpipe.vision.processor_sizes import dpt_size, glpn_size, model_padding

IMAGE_INPUT_TYPES = "a file path, an http(s) URL, a base64 string, a PIL.Image, a numpy HWC uint8 array or raw bytes"
# processor class -> how it resizes; every one then rescales, normalizes and puts channels first
RESIZE_MODES = {
    "ViTImageProcessor": "fixed",
    "DeiTImageProcessor": "fixed",
    "SegformerImageProcessor": "fixed",
    "ConvNextImageProcessor": "convnext",
    "CLIPImageProcessor": "shortest_edge",
    "DetrImageProcessor": "detr",
    "YolosImageProcessor": "yolos",
    "ViltImageProcessor": "vilt",
    "LayoutLMv3ImageProcessor": "fixed",  # document-question-answering reads its OCR settings (apply_ocr...)
    "BitImageProcessor": "shortest_edge",  # DINOv2
    "DPTImageProcessor": "dpt",
    "GLPNImageProcessor": "glpn",
    "Swin2SRImageProcessor": "swin2sr",  # no resize: rescale, then symmetric padding
}
# settings whose transformers default differs from the generic ones below (ViLT: bicubic, shortest edge 384)
PROCESSOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "ViltImageProcessor": {"resample": 3, "size": {"shortest_edge": 384}},
    "BitImageProcessor": {"resample": 3},
    "DPTImageProcessor": {"resample": 3, "size": {"height": 384, "width": 384}},
    "GLPNImageProcessor": {"do_normalize": False, "rescale_factor": 1 / 255},  # GLPN rescales by 1/255 always
    "Swin2SRImageProcessor": {"do_resize": False, "do_normalize": False},
}


def _open(data: bytes, what: str, limits: Limits = UNLIMITED) -> PIL.Image.Image:
    try:
        image = PIL.Image.open(io.BytesIO(data))
        limits.check_image(image.width, image.height)  # from the header, before decoding
        image.load()
    except InvalidInputError:
        raise
    except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, SyntaxError... on bad data
        raise InvalidInputError(f"{what} is not a readable image ({type(exc).__name__}: {exc}).") from exc
    return image


def _from_string(text: str, timeout: Optional[float], sources: MediaSources, limits: Limits = UNLIMITED) -> PIL.Image.Image:
    sources.check_url(text)
    if text.startswith(("http://", "https://")):
        return _open(fetch_url(text, timeout, "image", "its file path, bytes or a PIL.Image"), f"The content of {text!r}", limits)
    if sources.may_read_files() and os.path.isfile(text):
        with open(text, "rb") as handle:
            return _open(handle.read(), f"The file {text!r}", limits)
    payload = "".join((text.split(",", 1)[1] if text.startswith("data:image/") else text).split())
    try:
        data = base64.b64decode(payload.encode(), validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if not data:
        if not sources.may_read_files():
            raise InvalidInputError(
                f"{text[:200]!r} is not a base64-encoded image; this pipeline takes {describe(sources)} "
                "(file paths are turned off: start the server with --allow-media-files to read local files)."
            )
        raise InvalidInputError(
            f"{text[:200]!r} is not an existing file, an http(s) URL or a base64-encoded image. "
            "Check the path (relative paths are read from the current directory)."
        )
    return _open(data, "The base64 string", limits)


def _from_array(array: np.ndarray) -> PIL.Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise InvalidInputError(
            f"A numpy image must be HxW or HxWxC with C in 1, 3, 4 (channels last), got shape {array.shape}."
        )
    if array.dtype != np.uint8:
        raise InvalidInputError(
            f"A numpy image must be uint8 (0-255), got {array.dtype}. Convert it, e.g. (x * 255).round().astype(np.uint8)."
        )
    return PIL.Image.fromarray(np.ascontiguousarray(array))


def load_image(item: Any, timeout: Optional[float] = None, sources: MediaSources = FILES_AND_URLS,
               limits: Limits = UNLIMITED) -> PIL.Image.Image:
    """An RGB PIL image from any supported input, EXIF-transposed and converted as transformers does.

    `sources` says whether strings may name local files or URLs (a server turns both off)."""
    if isinstance(item, str):
        image = _from_string(item, timeout, sources, limits)
    elif isinstance(item, os.PathLike):
        image = _from_string(os.fspath(item), timeout, sources, limits)
    elif isinstance(item, PIL.Image.Image):
        image = item
    elif isinstance(item, np.ndarray):
        image = _from_array(item)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        image = _open(bytes(item), "The bytes given", limits)
    else:
        raise InvalidInputError(f"An image must be {IMAGE_INPUT_TYPES}; got {type(item).__name__}: {item!r:.80}.")
    if image.width == 0 or image.height == 0:
        raise InvalidInputError(f"The image has zero size ({image.width}x{image.height}); pass a non-empty image.")
    limits.check_image(image.width, image.height)  # PIL images and arrays (files were checked before decoding)
    image = PIL.ImageOps.exif_transpose(image)
    return image.convert("RGB")


def _shortest_edge_size(height: int, width: int, size: int) -> tuple[int, int]:
    """transformers' get_resize_output_image_size(default_to_square=False) without max_size."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def _aspect_size(height: int, width: int, size: int, max_size: Optional[int], yolos: bool) -> tuple[int, int]:
    """DETR's get_size_with_aspect_ratio, or YOLOS' (other branch order, sides rounded down to multiples of 16)."""
    raw_size = None
    if max_size is not None:
        low, high = float(min(height, width)), float(max(height, width))
        if high / low * size > max_size:
            raw_size = max_size * low / high
            size = int(round(raw_size))
    unchanged = (height <= width and height == size) or (width <= height and width == size)
    if unchanged and not (yolos and width < height):
        out = (height, width)
    elif width < height:
        out = (int((raw_size if raw_size is not None else size) * height / width), size)
    else:
        out = (size, int((raw_size if raw_size is not None else size) * width / height))
    return (out[0] - out[0] % 16, out[1] - out[1] % 16) if yolos else out  # YOLOS rounds down to 16 (mod_size)


def _vilt_size(height: int, width: int, shorter: int, divisor: int) -> tuple[int, int]:
    """ViLT's get_resize_output_image_size: shortest edge to `shorter`, longest capped at int(1333/800 * shorter),
    both rounded half up then down to a multiple of `divisor`."""
    longer = int(1333 / 800 * shorter)
    scale = shorter / min(height, width)
    new_h, new_w = (shorter, scale * width) if height < width else (scale * height, shorter)
    if max(new_h, new_w) > longer:
        scale = longer / max(new_h, new_w)
        new_h, new_w = scale * new_h, scale * new_w
    new_h, new_w = int(new_h + 0.5), int(new_w + 0.5)
    return new_h // divisor * divisor, new_w // divisor * divisor


def center_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """transformers' center_crop on an HWC array: slice, zero-padding first when the image is smaller."""
    orig_h, orig_w = image.shape[:2]
    top, left = (orig_h - height) // 2, (orig_w - width) // 2
    if top >= 0 and left >= 0 and top + height <= orig_h and left + width <= orig_w:
        return image[top : top + height, left : left + width]
    new_h, new_w = max(height, orig_h), max(width, orig_w)
    canvas = np.zeros((new_h, new_w) + image.shape[2:], dtype=image.dtype)
    top_pad, left_pad = ceil((new_h - orig_h) / 2), ceil((new_w - orig_w) / 2)
    canvas[top_pad : top_pad + orig_h, left_pad : left_pad + orig_w] = image
    top, left = top + top_pad, left + left_pad
    return canvas[max(0, top) : min(new_h, top + height), max(0, left) : min(new_w, left + width)]


# size keys each resize mode reads (transformers' get_size_dict turns an int size into these)
SIZE_KEYS = {
    "fixed": (("height", "width"),),
    "convnext": (("shortest_edge",),),
    "shortest_edge": (("shortest_edge",), ("height", "width")),
    "detr": (("shortest_edge", "longest_edge"), ("shortest_edge",), ("height", "width")),
    "yolos": (("shortest_edge", "longest_edge"), ("shortest_edge",), ("height", "width")),
    "vilt": (("shortest_edge",),),
    "dpt": (("height", "width"),),
    "glpn": (),  # GLPN has no size: it rounds each side down to a multiple of size_divisor
    "swin2sr": (),
}


def _size_dict(size: Any, mode: str, where: str) -> Optional[dict[str, int]]:
    """The processor's `size` as a dict with the keys its resize reads; MissingModelFileError naming them if not."""
    if size is None:
        return None
    if isinstance(size, int):
        return {"height": size, "width": size} if mode in ("fixed", "dpt") else {"shortest_edge": size}
    if isinstance(size, dict) and any(all(k in size for k in keys) for keys in SIZE_KEYS[mode]):
        return size
    wanted = " or ".join("+".join(keys) for keys in SIZE_KEYS[mode])
    raise MissingModelFileError(f"{where}: size {size!r} is not one onnxpipe resizes with; it reads {wanted}.")


@dataclass(frozen=True)
class ImageProcessor:
    """The settings of one preprocessor_config.json and the transformers steps they drive."""

    kind: str
    config: dict[str, Any]

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str = "preprocessor_config.json") -> ImageProcessor:
        """Check the processor type is one onnxpipe implements; MissingModelFileError naming the fix otherwise."""
        kind = config.get("image_processor_type") or str(config.get("feature_extractor_type", "")).replace(
            "FeatureExtractor", "ImageProcessor"
        )
        kind = kind.removesuffix("Fast")
        if kind not in RESIZE_MODES:
            raise MissingModelFileError(
                f"{where} names image processor {kind or 'none'!r}; onnxpipe implements {', '.join(RESIZE_MODES)}."
            )
        config = {**PROCESSOR_DEFAULTS.get(kind, {}), **{k: v for k, v in config.items() if v is not None}}
        return cls(kind, {**config, "size": _size_dict(config.get("size"), RESIZE_MODES[kind], where)})

    def _get(self, key: str, default: Any) -> Any:
        value = self.config.get(key)
        return default if value is None else value

    @property
    def pads(self) -> bool:
        """Whether images of a batch are padded to a common size with a pixel_mask (DETR, YOLOS, ViLT)."""
        return RESIZE_MODES[self.kind] in ("detr", "yolos", "vilt") and bool(self._get("do_pad", True))

    def _resize_to(self, image: PIL.Image.Image, height: int, width: int) -> np.ndarray:
        resample = PIL.Image.Resampling(int(self._get("resample", 2)))
        return np.array(image.resize((width, height), resample=resample, reducing_gap=None))

    def _resized(self, image: PIL.Image.Image) -> np.ndarray:
        mode, size = RESIZE_MODES[self.kind], dict(self._get("size", {"height": 224, "width": 224}))
        h, w = image.height, image.width
        if not self._get("do_resize", True) or mode == "swin2sr":
            return np.array(image)
        if mode == "glpn":
            return self._resize_to(image, *glpn_size(h, w, int(self._get("size_divisor", 32))))
        if mode == "dpt":
            keep, multiple = bool(self._get("keep_aspect_ratio", False)), int(self._get("ensure_multiple_of", 1))
            return self._resize_to(image, *dpt_size(h, w, size, keep, multiple))
        if "height" in size and "width" in size and mode != "convnext":
            return self._resize_to(image, int(size["height"]), int(size["width"]))
        if mode == "convnext":
            edge = int(size["shortest_edge"])
            if edge >= 384:
                return self._resize_to(image, edge, edge)
            array = self._resize_to(image, *_shortest_edge_size(h, w, int(edge / self._get("crop_pct", 224 / 256))))
            return center_crop(array, edge, edge)
        if mode == "shortest_edge":
            return self._resize_to(image, *_shortest_edge_size(h, w, int(size["shortest_edge"])))
        if mode == "vilt":
            edge, divisor = int(size["shortest_edge"]), int(self._get("size_divisor", 32))
            height, width = _vilt_size(h, w, edge, divisor)
            if height < 1 or width < 1:
                raise InvalidInputError(
                    f"A {w}x{h} image would be resized to {width}x{height} pixels (shortest_edge {edge}, longest "
                    f"{int(1333 / 800 * edge)}, multiples of {divisor}): its aspect ratio is too extreme for this "
                    "model. Crop or pad it first."
                )
            return self._resize_to(image, height, width)
        edge, longest = int(size["shortest_edge"]), size.get("longest_edge")
        height, width = _aspect_size(h, w, edge, longest, mode == "yolos")
        if height < 1 or width < 1:
            raise InvalidInputError(
                f"A {w}x{h} image would be resized to {width}x{height} pixels (shortest_edge {edge}, longest_edge "
                f"{longest}): its aspect ratio is too extreme for this model. Crop or pad it first."
            )
        return self._resize_to(image, height, width)

    def preprocess(self, image: PIL.Image.Image) -> np.ndarray:
        """pixel_values (C, H, W) float32 of one RGB image, before any batch padding."""
        if image.width == 1 and image.height == 1:
            raise InvalidInputError(
                "The image is 1x1 pixel: transformers' image processors cannot tell its channel axis and fail. "
                "Pass an image of at least 2x2 pixels."
            )
        array = self._resized(image)
        if self._get("do_center_crop", False) and RESIZE_MODES[self.kind] != "convnext":
            crop = self._get("crop_size", {"height": 224, "width": 224})
            crop = crop if isinstance(crop, dict) else {"height": crop, "width": crop}
            array = center_crop(array, int(crop["height"]), int(crop["width"]))
        values: np.ndarray = array
        if self._get("do_rescale", True):
            values = (array.astype(np.float64) * float(self._get("rescale_factor", 1 / 255))).astype(np.float32)
        if self._get("do_normalize", True):
            values = values.astype(np.float32, copy=False)
            mean = np.array(self._get("image_mean", [0.5, 0.5, 0.5]), dtype=np.float32)
            std = np.array(self._get("image_std", [0.5, 0.5, 0.5]), dtype=np.float32)
            values = (values - mean) / std
        values = model_padding(values, RESIZE_MODES[self.kind], self.config)
        return np.ascontiguousarray(values.astype(np.float32, copy=False).transpose(2, 0, 1))


def array_image(pixels: np.ndarray) -> PIL.Image.Image:
    """A uint8 (H, W) or (H, W, 3) array as a PIL image ("L" or "RGB"): the image answers of depth-estimation and
    image-to-image, made here so that Pillow stays imported by this module only."""
    return PIL.Image.fromarray(pixels)


def mask_image(mask: np.ndarray) -> PIL.Image.Image:
    """A boolean (H, W) mask as the PIL "L" image transformers returns: 255 inside, 0 outside."""
    return PIL.Image.fromarray((mask * 255).astype(np.uint8))


def pad_batch(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad (C, H, W) arrays at the bottom/right to the largest size; (pixel_values, pixel_mask int64)."""
    height = max(a.shape[1] for a in arrays)
    width = max(a.shape[2] for a in arrays)
    values = np.zeros((len(arrays), arrays[0].shape[0], height, width), dtype=np.float32)
    mask = np.zeros((len(arrays), height, width), dtype=np.int64)
    for i, array in enumerate(arrays):
        values[i, :, : array.shape[1], : array.shape[2]] = array
        mask[i, : array.shape[1], : array.shape[2]] = 1
    return values, mask
