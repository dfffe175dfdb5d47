"""image-to-image (Swin2SR super-resolution): one PIL RGB image per input, as transformers' ImageToImagePipeline
returns it: the reconstruction clamped to [0, 1], times 255, rounded to uint8. Like transformers, the output keeps
the border the image processor padded on (Swin2SR pads the bottom and right to a multiple of its size_divisor), so a
64x64 picture upscaled x2 comes back 144x144."""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxpipe.errors import InvalidOptionError
from onnxpipe.tasks.image_base import IMAGE_OPTIONS, ImageBatch, ImagePipeline
from onnxpipe.vision.images import array_image


def reconstruction_image(values: np.ndarray) -> Any:
    """A (C, H, W) float reconstruction as transformers' postprocess turns it into a picture: clamp to [0, 1],
    channels last, * 255, round half to even, uint8."""
    values = np.clip(np.asarray(values, dtype=np.float32), 0, 1)
    pixels = (np.moveaxis(values, 0, -1) * 255.0).round().astype(np.uint8)
    return array_image(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


class ImageToImagePipeline(ImagePipeline):
    """Transform images (super-resolution); options as in transformers: timeout, batch_size. transformers' head_mask
    (attention heads to switch off) is refused: the exported graph has no such input."""

    OPTIONS = {"head_mask": None, **IMAGE_OPTIONS}

    def setup(self) -> None:
        super().setup()
        if "reconstruction" not in self.session.output_names:
            raise InvalidOptionError(
                f"{self.model_path.name} has outputs {self.session.output_names}, not reconstruction: it is not an "
                "image-to-image model. Export one (Swin2SR) with `onnxpipe export MODEL --task image-to-image`."
            )

    def validate_options(self, options: dict[str, Any]) -> None:
        self.validate_image_options(options)
        if options["head_mask"] is not None:
            raise InvalidOptionError(
                "head_mask is not supported: the exported graph runs every attention head (it has no head_mask input). "
                "Leave it out."
            )

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: ImageBatch, row: int, options: dict[str, Any]) -> Any:
        return reconstruction_image(outputs["reconstruction"][row])
