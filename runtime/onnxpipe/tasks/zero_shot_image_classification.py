"""zero-shot-image-classification (CLIP): [{score, label}] per image, sorted as transformers sorts them."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidOptionError
from onnxpipe.maths import softmax
from onnxpipe.tasks.image_base import IMAGE_OPTIONS, ImageBatch, ImagePiece, ImagePipeline
from onnxpipe.text.tokenizer import TextEncoder


class ZeroShotImageClassificationPipeline(ImagePipeline):
    """Score images against candidate labels; options as in transformers: candidate_labels, hypothesis_template,
    timeout, batch_size (images per run; every image is scored against every label)."""

    OPTIONS = {"candidate_labels": None, "hypothesis_template": "This is a photo of {}.", **IMAGE_OPTIONS}

    def setup(self) -> None:
        super().setup()
        self.encoder = TextEncoder(self.folder)
        if "logits_per_image" not in self.session.output_names:
            raise InvalidOptionError(
                f"{self.model_path.name} has outputs {self.session.output_names}, not logits_per_image: it is not a "
                "CLIP-style graph. Export it with `onnxpipe export ... --task zero-shot-image-classification`."
            )
        model_type = str(self.folder.config.get("model_type", ""))
        if "siglip" in model_type:  # transformers pads its captions to 64 tokens and scores with a sigmoid
            raise InvalidOptionError(
                f"zero-shot-image-classification runs CLIP-style models; {model_type!r} (SigLIP) is not supported yet."
            )

    def check_call(self, options: dict[str, Any]) -> None:
        if options["candidate_labels"] is None:
            raise InvalidOptionError("zero-shot-image-classification needs candidate_labels=[...], e.g. ['cat', 'dog'].")

    def run_items(self, items: Sequence[Any], options: dict[str, Any]) -> list[Any]:
        """Tokenize the hypotheses once per call; every batch of images is scored against all of them."""
        texts = [options["hypothesis_template"].format(label) for label in options["candidate_labels"]]
        labels = self.encoder.pad(self.encoder.tokenize(texts)).feeds()
        return self.run_pieces(self.prepare(items, options), options, lambda batch: self.collate(batch, options, labels))

    def validate_options(self, options: dict[str, Any]) -> None:
        self.validate_image_options(options)
        labels = options["candidate_labels"]
        if labels is not None:
            if isinstance(labels, str) or not isinstance(labels, (list, tuple)) or not labels or not all(
                isinstance(label, str) for label in labels
            ):
                raise InvalidOptionError(
                    f"candidate_labels must be a non-empty list of strings, e.g. ['cat', 'dog']; got {labels!r:.80}."
                )
            options["candidate_labels"] = list(labels)
        template = options["hypothesis_template"]
        if not isinstance(template, str) or "{}" not in template:
            raise InvalidOptionError(
                f"hypothesis_template must be a string with a {{}} where the label goes, got {template!r}."
            )

    def collate(
        self, pieces: Sequence[ImagePiece], options: dict[str, Any], labels: Optional[Mapping[str, np.ndarray]] = None
    ) -> ImageBatch:
        """The stacked images with the call's tokenized candidate labels (`labels`, the text graph inputs)."""
        batch = super().collate(pieces, options)
        return ImageBatch(batch.pixel_values, batch.pixel_mask, batch.original_sizes, dict(labels or {}))

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: ImageBatch, row: int, options: dict[str, Any]) -> Any:
        scores = softmax(outputs["logits_per_image"][row].astype(np.float32))
        pairs = sorted(zip(scores.tolist(), options["candidate_labels"]), key=lambda pair: -pair[0])
        return [{"score": float(score), "label": label} for score, label in pairs]

