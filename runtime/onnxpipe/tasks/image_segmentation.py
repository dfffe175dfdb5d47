"""image-segmentation: [{score, label, mask}] per image, masks as PIL "L" images of the original size, as
transformers' pipeline returns them.

Semantic heads (Segformer-style `logits` (C, h, w)) give one segment per class present, score None. DETR panoptic
graphs (`logits` + `pred_masks`) give panoptic / instance segments with scores (subtask None means panoptic, as
transformers picks it for DETR's processor) or, with subtask="semantic", DETR's semantic map.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxpipe.errors import InvalidOptionError
from onnxpipe.options import check_number
from onnxpipe.tasks.image_base import IMAGE_OPTIONS, ImageBatch, ImagePipeline
from onnxpipe.tasks.image_segmentation_maps import detr_segments, detr_semantic_map, upsampled_argmax
from onnxpipe.vision.images import mask_image

__all__ = ["ImageSegmentationPipeline", "upsampled_argmax"]

# transformers' defaults for panoptic / instance post-processing in the pipeline
PANOPTIC_DEFAULTS = {"threshold": 0.9, "mask_threshold": 0.5, "overlap_mask_area_threshold": 0.5}
SEMANTIC_ONLY = ("semantic",)
DETR_SUBTASKS = ("panoptic", "instance", "semantic")
# query-based heads that optimum exports but onnxpipe does not post-process (MaskFormer's output names)
UNSUPPORTED_OUTPUTS = ("masks_queries_logits",)


class ImageSegmentationPipeline(ImagePipeline):
    """Semantic, panoptic and instance segmentation; options as in transformers: subtask, threshold,
    mask_threshold, overlap_mask_area_threshold (panoptic / instance), timeout, batch_size."""

    OPTIONS = {"subtask": None, **{name: None for name in PANOPTIC_DEFAULTS}, **IMAGE_OPTIONS}

    def setup(self) -> None:
        super().setup()
        outputs = self.session.output_names
        if any(name in outputs for name in UNSUPPORTED_OUTPUTS):
            raise InvalidOptionError(
                f"{self.model_path.name} has outputs {outputs}: a MaskFormer-style head, which onnxpipe does not "
                "post-process (optimum's MaskFormer graph runs only at the image size it was traced with; measured "
                "with optimum-onnx 0.1.0). It segments with semantic heads (Segformer-style logits) and DETR "
                "panoptic (logits + pred_masks)."
            )
        self.panoptic = "pred_masks" in outputs
        self.subtasks = DETR_SUBTASKS if self.panoptic else SEMANTIC_ONLY
        self.logits_name = self.session.output_named("logits")

    def validate_options(self, options: dict[str, Any]) -> None:
        self.validate_image_options(options)
        subtask = options["subtask"]
        if subtask not in (None, *self.subtasks):
            raise InvalidOptionError(
                f"subtask {subtask!r} is not supported by this model: it runs {', '.join(self.subtasks)} segmentation. "
                "Panoptic and instance segmentation need a DETR panoptic model (DetrForSegmentation, exported "
                "with `onnxpipe export ... --task image-segmentation`); semantic heads such as Segformer have no "
                "instance masks, and Mask2Former / MaskFormer graphs are not supported."
            )
        given = [name for name in PANOPTIC_DEFAULTS if options[name] is not None]
        if given and (not self.panoptic or subtask == "semantic"):
            raise InvalidOptionError(
                f"{', '.join(given)} only apply to panoptic / instance segmentation (DETR panoptic models with "
                "subtask None, 'panoptic' or 'instance'); semantic segmentation takes subtask and timeout."
            )
        for name in given:
            check_number(name, options[name], minimum=0, maximum=1, must="must be a number between 0 and 1")

    def postprocess(
        self, outputs: dict[str, np.ndarray], encoded: ImageBatch, row: int, options: dict[str, Any]
    ) -> Any:
        height, width = encoded.original_sizes[row]
        logits = outputs[self.logits_name][row]
        if self.panoptic and options["subtask"] != "semantic":
            settings = {k: default if options[k] is None else options[k] for k, default in PANOPTIC_DEFAULTS.items()}
            segments = detr_segments(logits, outputs["pred_masks"][row], height, width, **settings)
            return [{"score": s.score, "label": self.label(s.label_id), "mask": mask_image(s.mask)} for s in segments]
        if self.panoptic:
            segmentation = detr_semantic_map(logits, outputs["pred_masks"][row], height, width)
        else:
            segmentation = upsampled_argmax(logits, height, width)
        return [
            {"score": None, "label": self.label(int(label)), "mask": mask_image(segmentation == label)}
            for label in np.unique(segmentation)
        ]
