"""object-detection (DETR, YOLOS): [{score, label, box: {xmin, ymin, xmax, ymax}}] per image, as transformers."""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxpipe.errors import InvalidOptionError
from onnxpipe.maths import softmax
from onnxpipe.options import check_number
from onnxpipe.tasks.image_base import IMAGE_OPTIONS, ImageBatch, ImagePipeline


def corners(boxes: np.ndarray) -> np.ndarray:
    """(center_x, center_y, width, height) -> (x0, y0, x1, y1), as transformers' center_to_corners_format."""
    cx, cy, w, h = (boxes[..., i] for i in range(4))
    half = np.float32(0.5)
    return np.stack([cx - half * w, cy - half * h, cx + half * w, cy + half * h], axis=-1)


class ObjectDetectionPipeline(ImagePipeline):
    """Detect objects; options as in transformers: threshold (default 0.5), timeout, batch_size."""

    OPTIONS = {"threshold": 0.5, **IMAGE_OPTIONS}

    def setup(self) -> None:
        super().setup()
        missing = [name for name in ("logits", "pred_boxes") if name not in self.session.output_names]
        if missing:
            raise InvalidOptionError(
                f"{self.model_path.name} has outputs {self.session.output_names}, not {missing}: it is not a "
                "DETR/YOLOS-style detection graph. Export it with `onnxpipe export ... --task object-detection`."
            )

    def validate_options(self, options: dict[str, Any]) -> None:
        self.validate_image_options(options)
        check_number("threshold", options["threshold"], must="must be a number (a score between 0 and 1)")

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: ImageBatch, row: int, options: dict[str, Any]) -> Any:
        probabilities = softmax(outputs["logits"][row].astype(np.float32))[:, :-1]  # the last class is "no object"
        scores, labels = probabilities.max(axis=-1), probabilities.argmax(axis=-1)
        height, width = encoded.original_sizes[row]
        scale = np.array([width, height, width, height], dtype=np.float32)
        boxes = corners(outputs["pred_boxes"][row].astype(np.float32)) * scale
        keep = scores > options["threshold"]
        return [
            {
                "score": float(score),
                "label": self.label(int(label)),
                "box": dict(zip(("xmin", "ymin", "xmax", "ymax"), (int(v) for v in box))),
            }
            for score, label, box in zip(scores[keep], labels[keep], boxes[keep])
        ]
