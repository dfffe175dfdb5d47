"""Texts to sentence vectors with a feature-extraction pipeline, longest texts first (less padding), in input order.

Shared by `onnxpipe embed` and `onnxpipe.ray.embed_dataset`, so both give the same vectors for the same texts.
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np

from onnxpipe.errors import InvalidOptionError
from onnxpipe.options import check_bool
from onnxpipe.pipelines import pipeline
from onnxpipe.tasks.feature_extraction import POOLINGS, FeatureExtractionPipeline

_TRUNCATED = re.compile(r"^(\d+) input\(s\) were longer than (\d+) tokens")
#: pooling="auto": the folder's sentence-transformers embedding when it has modules.json, else mean pooling
POOLING_CHOICES = ("auto", *(p for p in POOLINGS if p != "none"))


@dataclass(frozen=True)
class EmbedOptions:
    """How texts become vectors: pooling ("auto", "folder", "mean", "cls"...), normalize, prompt, batch size."""

    pooling: str = "auto"
    normalize: bool = False
    prompt_name: Optional[str] = None
    prompt: Optional[str] = None
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.pooling not in POOLING_CHOICES:
            raise InvalidOptionError(f"pooling must be one of {', '.join(POOLING_CHOICES)}; got {self.pooling!r}.")
        check_bool("normalize", self.normalize)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InvalidOptionError(f"batch_size must be an int >= 1; got {self.batch_size!r}.")


def load_pipeline(model: Union[str, Any], dtype: Optional[str] = None, device: Union[str, int] = "cpu",
                  threads: Optional[int] = None) -> FeatureExtractionPipeline:
    """The feature-extraction pipeline of a model folder (or hub id); `threads` is onnxruntime's intra-op count."""
    return pipeline("feature-extraction", model=model, dtype=dtype, device=device, intra_op_num_threads=threads)


def resolve_pooling(pipe: FeatureExtractionPipeline, pooling: str) -> str:
    """The pooling "auto" stands for on this folder: "folder" when it is a sentence-transformers folder
    (modules.json), else "mean"; any other value as given."""
    if pooling != "auto":
        return pooling
    return "folder" if pipe.sentence_config.from_modules else "mean"


def check_options(pipe: FeatureExtractionPipeline, options: EmbedOptions) -> None:
    """InvalidOptionError now, before any text is read, for options this folder cannot honour (a prompt name it
    does not define, a folder embedding it cannot compute)."""
    pipe.check_options(_call_options(pipe, options, 1), pipe.defaults)


def _call_options(pipe: FeatureExtractionPipeline, options: EmbedOptions, batch_size: int) -> dict[str, Any]:
    return {"pooling": resolve_pooling(pipe, options.pooling), "normalize": options.normalize,
            "prompt_name": options.prompt_name, "prompt": options.prompt, "return_tensors": True,
            "batch_size": batch_size}


def length_order(texts: Sequence[str]) -> np.ndarray:
    """Indices of `texts`, longest first (characters, as sentence-transformers sorts); ties keep input order."""
    return np.argsort([-len(text) for text in texts], kind="stable")


def embed_texts(pipe: FeatureExtractionPipeline, texts: Sequence[str], options: EmbedOptions,
                on_batch: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """The (len(texts), dim) float32 vectors of `texts` in their order: run longest first, `batch_size` texts per
    model call; `on_batch(n)` is told after each call."""
    call = _call_options(pipe, options, options.batch_size)
    order = length_order(texts)
    vectors: Optional[np.ndarray] = None
    for start in range(0, len(texts), options.batch_size):
        rows = order[start : start + options.batch_size]
        batch = np.stack(pipe([texts[i] for i in rows], **call)).astype(np.float32, copy=False)
        if vectors is None:
            vectors = np.empty((len(texts), batch.shape[1]), dtype=np.float32)
        vectors[rows] = batch
        if on_batch is not None:
            on_batch(len(rows))
    if vectors is None:
        raise InvalidOptionError("embed_texts got no texts; pass at least one.")
    return vectors


@dataclass
class Truncations:
    """Texts cut to the model's limit, counted over many calls (the tokenizer warns once per call)."""

    texts: int = 0
    limit: Optional[int] = None


@contextmanager
def counting_truncations(seen: Truncations) -> Iterator[Truncations]:
    """Add the tokenizer's truncation warnings inside the block to `seen`; other warnings pass through. Warnings are
    held until the block ends: wrap one chunk at a time."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield seen
        finally:
            for warning in caught:
                match = _TRUNCATED.match(str(warning.message))
                if match:
                    seen.texts += int(match.group(1))
                    seen.limit = int(match.group(2))
                else:
                    warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
