"""image-feature-extraction: the hidden states of a vision backbone (ViT, DINOv2, CLIP's vision tower) as
transformers' ImageFeatureExtractionPipeline returns them: per image, the nested list [1][tokens][hidden] of
last_hidden_state, or with `pool=True` the [1][hidden] pooler_output; numpy arrays of those shapes with
`return_tensors=True` (transformers gives torch tensors)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from onnxpipe.errors import InvalidOptionError, MissingModelFileError
from onnxpipe.options import check_bool
from onnxpipe.tasks.image_base import IMAGE_OPTIONS, ImageBatch, ImagePiece, ImagePipeline
from onnxpipe.vision.images import ImageProcessor, load_image

# preprocessor_config.json settings a call may override through image_processor_kwargs (those onnxpipe reads)
PROCESSOR_SETTINGS = (
    "do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale", "rescale_factor", "do_normalize",
    "image_mean", "image_std", "keep_aspect_ratio", "ensure_multiple_of", "do_pad", "size_divisor",
)


class ImageFeatureExtractionPipeline(ImagePipeline):
    """Embed images; options as in transformers: pool, return_tensors, image_processor_kwargs, timeout, batch_size."""

    OPTIONS = {"pool": None, "return_tensors": False, "image_processor_kwargs": None, **IMAGE_OPTIONS}

    def setup(self) -> None:
        super().setup()
        names = self.session.output_names
        # transformers returns model_outputs[0]: last_hidden_state for these backbones
        self.hidden_name = "last_hidden_state" if "last_hidden_state" in names else names[0]
        self.pooled_name = "pooler_output" if "pooler_output" in names else None

    def validate_options(self, options: dict[str, Any]) -> None:
        self.validate_image_options(options)
        check_bool("return_tensors", options["return_tensors"])
        check_bool("pool", options["pool"], optional=True)
        if options["pool"] and self.pooled_name is None:
            raise InvalidOptionError(
                f"pool=True needs a pooled output, and {self.model_path.name} has only {self.session.output_names} "
                "(transformers raises 'No pooled output was returned' the same way). Export the backbone with "
                "`onnxpipe export MODEL --task image-feature-extraction`, which adds pooler_output, or pool the "
                "token vectors yourself."
            )
        self.processor_for(options)  # the overrides are checked once, with the call's other options

    def processor_for(self, options: dict[str, Any]) -> ImageProcessor:
        """The folder's processor with the call's image_processor_kwargs applied (a new one; nothing sticks)."""
        overrides = options["image_processor_kwargs"]
        if overrides is None:
            return self.processor
        if not isinstance(overrides, dict):
            raise InvalidOptionError(
                f"image_processor_kwargs must be a dict such as {{'size': {{'height': 224, 'width': 224}}}}, "
                f"got {type(overrides).__name__}."
            )
        unknown = sorted(str(k) for k in overrides if k not in PROCESSOR_SETTINGS)
        if unknown:
            raise InvalidOptionError(
                f"image_processor_kwargs {unknown} are not settings onnxpipe applies; it takes {', '.join(PROCESSOR_SETTINGS)}."
            )
        try:
            return ImageProcessor.from_config({**self.processor.config, **overrides}, "image_processor_kwargs")
        except MissingModelFileError as exc:
            raise InvalidOptionError(str(exc)) from exc

    def prepare(self, items: Sequence[Any], options: dict[str, Any]) -> list[ImagePiece]:
        processor = self.processor_for(options)
        pieces = []
        for item in items:
            image = load_image(item, options["timeout"], self.media_sources, self.limits)
            pieces.append(ImagePiece(processor.preprocess(image), (image.height, image.width)))
        return pieces

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: ImageBatch, row: int, options: dict[str, Any]) -> Any:
        name = self.pooled_name if options["pool"] else self.hidden_name
        values = outputs[name][row][None].astype(np.float32, copy=False)  # transformers keeps a batch axis of 1
        return values if options["return_tensors"] else values.tolist()
