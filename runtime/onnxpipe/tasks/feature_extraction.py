"""feature-extraction: token embeddings exactly as transformers returns them, plus sentence pooling.

`pooling="none"` (default) gives transformers' nested list [1][tokens][hidden] per input;
`pooling="mean"` or `"cls"` gives one vector per input, optionally L2-normalized.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxpipe.errors import InvalidOptionError
from onnxpipe.options import check_bool, check_choice
from onnxpipe.tasks.text_base import TOKENIZER_OPTIONS, TextPipeline, check_tokenizer_options
from onnxpipe.text.tokenizer import EncodedBatch

POOLINGS = ("none", "mean", "cls")
# output names of the token embeddings, by exporter: transformers/optimum, sentence-transformers
_HIDDEN_NAMES = ("last_hidden_state", "token_embeddings")


class FeatureExtractionPipeline(TextPipeline):
    """Embed texts; options: return_tensors, pooling, normalize, truncation, batch_size."""

    OPTIONS = {"return_tensors": False, "pooling": "none", "normalize": False, "tokenize_kwargs": None, **TOKENIZER_OPTIONS}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        names = self.session.output_names
        self.hidden_name = next((n for n in _HIDDEN_NAMES if n in names), names[0])

    def validate_options(self, options: dict[str, Any]) -> None:
        tokenize_kwargs = options.pop("tokenize_kwargs", None) or {}
        unknown = set(tokenize_kwargs) - set(TOKENIZER_OPTIONS)
        if unknown:
            raise InvalidOptionError(f"tokenize_kwargs takes {sorted(TOKENIZER_OPTIONS)}; got {sorted(unknown)}.")
        options.update(tokenize_kwargs)
        options["tokenize_kwargs"] = None
        check_tokenizer_options(options)
        check_choice("pooling", options["pooling"], POOLINGS)
        check_bool("normalize", options["normalize"])
        check_bool("return_tensors", options["return_tensors"])
        if options["normalize"] and options["pooling"] == "none":
            raise InvalidOptionError("normalize=True needs a sentence vector: pass pooling='mean' or pooling='cls'.")

    def prepare(self, items: list[str], options: dict[str, Any]) -> list:
        return self.encoder.tokenize(items, None, options["truncation"], options["max_length"])

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: EncodedBatch, row: int, options: dict[str, Any]) -> Any:
        mask = encoded.attention_mask[row].astype(bool)
        # drop padding, as an unbatched run has none; masking already copied, so fp32 outputs need no second copy
        hidden = outputs[self.hidden_name][row][mask].astype(np.float32, copy=False)
        pooling = options["pooling"]
        if pooling == "none":
            tokens = hidden[None]
            return tokens if options["return_tensors"] else tokens.tolist()
        vector = hidden.mean(axis=0) if pooling == "mean" else hidden[0]
        if options["normalize"]:
            vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return vector if options["return_tensors"] else vector.tolist()
