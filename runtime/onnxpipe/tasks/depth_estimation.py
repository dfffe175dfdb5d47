"""depth-estimation (DPT, GLPN): per image {"predicted_depth", "depth"} as transformers' DepthEstimationPipeline
returns them. predicted_depth is the model's depth map resized bicubically to the image's size (a float32 numpy
array (height, width) where transformers gives a torch tensor); depth is that map scaled to 0-255 by its minimum and
maximum and truncated to a PIL "L" image."""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxpipe.errors import InvalidOptionError
from onnxpipe.options import check_timeout
from onnxpipe.tasks.image_base import IMAGE_OPTIONS, ImageBatch, ImagePipeline
from onnxpipe.vision.images import array_image
from onnxpipe.vision.resize import bicubic_resize


def depth_image(depth: np.ndarray) -> Any:
    """transformers' depth picture: (depth - min) / (max - min) * 255 cast to uint8 (truncated), in float32. A flat
    map (max == min, where transformers divides by zero) gives a black image."""
    depth = np.asarray(depth, dtype=np.float32)
    low, span = depth.min(), depth.max() - depth.min()
    scaled = (depth - low) / span if span > 0 else np.zeros_like(depth)
    return array_image((scaled * 255).astype("uint8"))


class DepthEstimationPipeline(ImagePipeline):
    """Estimate depth; options as in transformers: timeout, parameters={"timeout": ...}, batch_size."""

    OPTIONS = {"parameters": None, **IMAGE_OPTIONS}

    def setup(self) -> None:
        super().setup()
        if "predicted_depth" not in self.session.output_names:
            raise InvalidOptionError(
                f"{self.model_path.name} has outputs {self.session.output_names}, not predicted_depth: it is not a depth "
                "model. Export one (DPT, GLPN) with `onnxpipe export MODEL --task depth-estimation`."
            )

    def validate_options(self, options: dict[str, Any]) -> None:
        parameters = options["parameters"]
        if parameters is not None:  # transformers reads only parameters["timeout"] and ignores the rest
            if not isinstance(parameters, dict) or set(parameters) - {"timeout"}:
                raise InvalidOptionError(
                    f"parameters takes only {{'timeout': seconds}} (as transformers reads it), got {parameters!r:.80}."
                )
            if "timeout" in parameters:
                options["timeout"] = parameters["timeout"]
            options["parameters"] = None
        check_timeout(options)

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: ImageBatch, row: int, options: dict[str, Any]) -> Any:
        height, width = encoded.original_sizes[row]
        depth = bicubic_resize(outputs["predicted_depth"][row], height, width)
        return {"predicted_depth": depth, "depth": depth_image(depth)}
