"""Pieces the text tasks share: the tokenizer options, top-k selection and the text pipeline base class."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError
from onnxpipe.graph_heads import check_graph_head
from onnxpipe.options import check_bool, check_int
from onnxpipe.tasks.pipeline_base import Pipeline
from onnxpipe.text.tokenizer import EncodedBatch, TextEncoder

# tokenizer options every text task takes (transformers passes them through to the tokenizer)
TOKENIZER_OPTIONS = {"truncation": True, "max_length": None}


def check_tokenizer_options(options: dict[str, Any]) -> None:
    """Validate `truncation` and `max_length`."""
    check_bool("truncation", options["truncation"])
    check_int("max_length", options["max_length"], optional=True, must="must be a positive int or None")


def best_indices(scores: np.ndarray, top_k: int) -> list[int]:
    """Indices of the `top_k` highest scores, highest first, ties in index order: what transformers gets by sorting
    every label's dict by score (a stable sort), without building a dict for each of 1,000 classes per call."""
    scores = np.asarray(scores)
    if top_k < 1:
        return []
    if 4 * top_k < scores.size:  # a vocabulary: partition first, then sort only the scores that can make the cut
        kth = np.partition(scores, scores.size - top_k)[scores.size - top_k]
        candidates = np.flatnonzero(scores >= kth)  # ascending index order, every tie of the k-th score included
        order = candidates[np.argsort(-scores[candidates], kind="stable")][:top_k]
    else:
        order = np.argsort(-scores, kind="stable")[:top_k]
    return [int(i) for i in order]


class TextPipeline(Pipeline):
    """A pipeline whose inputs are tokenized by the model folder's tokenizer."""

    def setup(self) -> None:
        super().setup()
        if not self.folder.manifest:  # a manifest's recorded task was checked before the session opened
            check_graph_head(self.task, self.session.output_shapes, self.folder.config.get("vocab_size"), str(self.model_path))
        self.encoder = TextEncoder(self.folder)

    def check_item(self, item: Any) -> Any:
        """Text tasks take strings."""
        if not isinstance(item, str):
            raise InvalidInputError(
                f"{self.task} takes a string or a list of strings; got {type(item).__name__}: {item!r:.80}."
            )
        return item

    def collate(self, pieces: Sequence[Any], options: dict[str, Any]) -> EncodedBatch:
        return self.encoder.pad(pieces)
