"""Pieces the text tasks share: the tokenizer options and the scoring functions, as transformers computes them."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.text.tokenizer import EncodedBatch, TextEncoder
from onnxpipe.tasks.pipeline_base import Pipeline

# tokenizer options every text task takes (transformers passes them through to the tokenizer)
TOKENIZER_OPTIONS = {"truncation": True, "max_length": None}


def check_tokenizer_options(options: dict[str, Any]) -> None:
    """Validate `truncation` and `max_length`."""
    if not isinstance(options["truncation"], bool):
        raise InvalidOptionError(f"truncation must be True or False, got {options['truncation']!r}.")
    max_length = options["max_length"]
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise InvalidOptionError(f"max_length must be a positive int or None, got {max_length!r}.")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the max as transformers does."""
    shifted = np.exp(logits - np.max(logits, axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function."""
    return 1.0 / (1.0 + np.exp(-logits))


# transformers' ClassificationFunction, by lower-case name
FUNCTIONS = {"sigmoid": sigmoid, "softmax": softmax, "none": lambda x: x}


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


def check_top_k(top_k: Any, none_means: str) -> None:
    """Raise InvalidOptionError unless `top_k` is None or a positive int; `none_means` says what None does."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidOptionError(f"top_k must be a positive int or None ({none_means}), got {top_k!r}.")


def check_function_to_apply(options: dict[str, Any]) -> None:
    """Normalize `function_to_apply` (a name or transformers' enum) to a FUNCTIONS key; None keeps the model's default."""
    function = options["function_to_apply"]
    if function is None:
        return
    name = getattr(function, "value", getattr(function, "name", function))
    if not isinstance(name, str) or name.lower() not in FUNCTIONS:
        raise InvalidOptionError(
            f"function_to_apply must be one of {', '.join(FUNCTIONS)} (or None for the model's default), got {function!r}."
        )
    options["function_to_apply"] = name.lower()


class TextPipeline(Pipeline):
    """A pipeline whose inputs are tokenized by the model folder's tokenizer."""

    def setup(self) -> None:
        super().setup()
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
