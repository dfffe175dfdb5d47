"""sentence-similarity (the Hugging Face hub's task): cosine similarity of a source sentence to each of a list of
sentences, with the folder's own sentence embedding (sentence-transformers' Pooling, Dense, Normalize, prompts
and max_seq_length, as feature-extraction's pooling="folder" computes it).

Input is the Inference API's `{"source_sentence": str, "sentences": [str, ...]}` (or a list of them, or the two as
keyword arguments); the answer is one float per sentence, in order, as `huggingface_hub.InferenceClient
.sentence_similarity` reads it. Options: prompt_name, prompt, truncation, max_length, batch_size.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError
from onnxpipe.tasks.feature_extraction import FeatureExtractionPipeline
from onnxpipe.tasks.text_base import TOKENIZER_OPTIONS
from onnxpipe.text.sentence_transformers_config import l2_normalize

INPUT_KEYS = ("source_sentence", "sentences")
_SHAPE = '{"source_sentence": "a text", "sentences": ["a text", ...]}'


class SentenceSimilarityPipeline(FeatureExtractionPipeline):
    """Score sentences against a source sentence by the cosine of the folder's sentence embeddings."""

    OPTIONS = {"prompt_name": None, "prompt": None, **TOKENIZER_OPTIONS}

    def setup(self) -> None:
        super().setup()
        self.sentence_config.check_usable()  # a folder whose modules onnxpipe cannot compute is refused up front

    def validate_options(self, options: dict[str, Any]) -> None:
        # feature-extraction's checks with the folder's sentence embedding, as arrays
        options.update(pooling="folder", normalize=False, return_tensors=True, tokenize_kwargs=None)
        super().validate_options(options)

    def call_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """`pipe(inputs, **options)`, or `pipe(source_sentence=..., sentences=..., **options)`."""
        if not args and "inputs" not in kwargs and any(key in kwargs for key in INPUT_KEYS):
            return {key: kwargs.pop(key) for key in INPUT_KEYS if key in kwargs}, kwargs
        return super().call_arguments(args, kwargs)

    def split_inputs(self, inputs: Any) -> tuple[list[Any], bool]:
        """A dict is one request; a list holds several."""
        if isinstance(inputs, dict):
            return [inputs], True
        return super().split_inputs(inputs)

    def check_item(self, item: Any) -> dict[str, Any]:
        """One {"source_sentence": str, "sentences": [str, ...]} request; InvalidInputError naming what is wrong."""
        if not isinstance(item, dict):
            raise InvalidInputError(f"sentence-similarity takes {_SHAPE} (or a list of them); got {type(item).__name__}: {item!r:.80}.")
        unknown = sorted(set(item) - set(INPUT_KEYS))
        if unknown or "source_sentence" not in item or "sentences" not in item:
            missing = [key for key in INPUT_KEYS if key not in item]
            raise InvalidInputError(
                f"sentence-similarity takes {_SHAPE}; "
                + (f"missing {missing}" if missing else "") + ("; " if missing and unknown else "")
                + (f"unknown key(s) {unknown}" if unknown else "") + "."
            )
        source, sentences = item["source_sentence"], item["sentences"]
        if not isinstance(source, str):
            raise InvalidInputError(f"source_sentence must be a string, got {type(source).__name__}: {source!r:.80}.")
        if not isinstance(sentences, (list, tuple)) or not sentences:
            raise InvalidInputError(
                f"sentences must be a non-empty list of strings to compare with source_sentence; got {sentences!r:.80}."
            )
        for index, sentence in enumerate(sentences):
            if not isinstance(sentence, str):
                raise InvalidInputError(
                    f"sentences[{index}] must be a string, got {type(sentence).__name__}: {sentence!r:.80}."
                )
        return {"source_sentence": source, "sentences": list(sentences)}

    def run_items(self, items: Sequence[Any], options: dict[str, Any]) -> list[Any]:
        """Embed every source and sentence of the call in one length-sorted run, then score each request."""
        texts = [text for item in items for text in (item["source_sentence"], *item["sentences"])]
        self.limits.check_inputs(len(texts))
        vectors = super().run_items(texts, options)
        results, start = [], 0
        for item in items:
            count = 1 + len(item["sentences"])
            results.append(cosine_scores(np.stack(vectors[start : start + count])))
            start += count
        return results



def cosine_scores(vectors: np.ndarray) -> list[float]:
    """Cosine of the first row with each later row, in order (sentence-transformers' cos_sim)."""
    unit = l2_normalize(vectors.astype(np.float32, copy=False))
    return [float(x) for x in unit[1:] @ unit[0]]
