"""image-segmentation (semantic: Segformer and other per-pixel heads): [{score: None, label, mask}] per image,
masks as PIL "L" images of the original size, as transformers' pipeline returns them."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidOptionError
from ..image import mask_image
from .common_image import IMAGE_OPTIONS, ImageBatch, ImagePipeline

SUBTASKS = ("semantic",)
# transformers' options for panoptic / instance post-processing, which onnxpipe does not run
PANOPTIC_OPTIONS = ("threshold", "mask_threshold", "overlap_mask_area_threshold")


def _source_index(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear (align_corners=False) source rows: lower index, upper index, weight of the upper one, as torch."""
    scale = np.float32(in_size / out_size)
    src = np.maximum(scale * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), 0)
    low = np.minimum(src.astype(np.int64), in_size - 1)
    return low, np.minimum(low + 1, in_size - 1), (src - low).astype(np.float32)


def upsampled_argmax(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """argmax over classes of logits (C, h, w) resized bilinearly to (height, width), one class at a time so
    memory stays O(height x width) (torch's interpolate + argmax, as transformers post-processes)."""
    y0, y1, wy = _source_index(height, logits.shape[1])
    x0, x1, wx = _source_index(width, logits.shape[2])
    wy, wx = wy[:, None], wx[None, :]
    best = np.full((height, width), -np.inf, dtype=np.float32)
    labels = np.zeros((height, width), dtype=np.int64)
    one = np.float32(1)
    for index, plane in enumerate(logits.astype(np.float32)):
        top, bottom = plane[y0], plane[y1]
        value = (one - wy) * ((one - wx) * top[:, x0] + wx * top[:, x1]) + wy * (
            (one - wx) * bottom[:, x0] + wx * bottom[:, x1]
        )
        better = value > best  # strict: the first class wins ties, as torch.argmax
        best[better], labels[better] = value[better], index
    return labels


class ImageSegmentationPipeline(ImagePipeline):
    """Semantic segmentation; options as in transformers: subtask ("semantic" or None), timeout, batch_size."""

    OPTIONS = {"subtask": None, **{name: None for name in PANOPTIC_OPTIONS}, **IMAGE_OPTIONS}

    def setup(self) -> None:
        super().setup()
        self.logits_name = self.session.output_named("logits")

    def validate_options(self, options: dict[str, Any]) -> None:
        self.validate_image_options(options)
        if options["subtask"] not in (None, *SUBTASKS):
            raise InvalidOptionError(
                f"subtask {options['subtask']!r} is not supported: onnxpipe runs {', '.join(SUBTASKS)} segmentation "
                "(panoptic and instance heads such as DETR-panoptic or Mask2Former are not supported yet)."
            )
        given = [name for name in PANOPTIC_OPTIONS if options[name] is not None]
        if given:
            raise InvalidOptionError(
                f"{', '.join(given)} only apply to panoptic / instance segmentation, which onnxpipe does not run; "
                "semantic segmentation takes subtask and timeout."
            )

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: ImageBatch, row: int, options: dict[str, Any]) -> Any:
        height, width = encoded.original_sizes[row]
        segmentation = upsampled_argmax(outputs[self.logits_name][row], height, width)
        return [
            {
                "score": None,
                "label": self.label(int(label)),
                "mask": mask_image(segmentation == label),
            }
            for label in np.unique(segmentation)
        ]
