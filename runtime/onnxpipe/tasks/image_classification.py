"""image-classification: the sorted list of {label, score} dicts transformers returns, per image."""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxpipe.maths import FUNCTIONS
from onnxpipe.options import check_function_to_apply, check_top_k
from onnxpipe.tasks.image_base import IMAGE_OPTIONS, ImageBatch, ImagePipeline
from onnxpipe.tasks.text_base import best_indices


class ImageClassificationPipeline(ImagePipeline):
    """Classify images; options as in transformers: top_k (default 5), function_to_apply, timeout, batch_size."""

    OPTIONS = {"top_k": 5, "function_to_apply": None, **IMAGE_OPTIONS}

    def setup(self) -> None:
        super().setup()
        self.logits_name = self.session.output_named("logits")

    def validate_options(self, options: dict[str, Any]) -> None:
        self.validate_image_options(options)
        check_top_k(options["top_k"], "5, as in transformers")
        check_function_to_apply(options)

    def _default_function(self) -> str:
        config = self.folder.config
        problem = config.get("problem_type")
        num_labels = len(self.id2label) if self.id2label else int(config.get("num_labels", 2))
        if problem == "multi_label_classification" or num_labels == 1:
            return "sigmoid"
        if problem == "single_label_classification" or num_labels > 1:
            return "softmax"
        return str(config.get("function_to_apply", "none")).lower()

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: ImageBatch, row: int, options: dict[str, Any]) -> Any:
        logits = outputs[self.logits_name][row].astype(np.float32)
        scores = FUNCTIONS[options["function_to_apply"] or self._default_function()](logits)
        best = best_indices(scores, options["top_k"] or 5)  # transformers reads top_k=None as its default, 5
        return [{"label": self.label(i), "score": float(scores[i])} for i in best]
