"""text-classification (alias sentiment-analysis): the same list of {label, score} dicts transformers returns."""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Optional

import numpy as np

from onnxpipe.errors import InvalidInputError
from onnxpipe.maths import FUNCTIONS
from onnxpipe.options import check_bool, check_function_to_apply, check_top_k
from onnxpipe.tasks.text_base import TOKENIZER_OPTIONS, TextPipeline, check_tokenizer_options
from onnxpipe.text.tokenizer import EncodedBatch

_UNSET = "<unset>"  # transformers' "top_k not given" marker: results keep their legacy shape


class TextClassificationPipeline(TextPipeline):
    """Classify texts or text pairs; options as in transformers: top_k, function_to_apply, batch_size."""

    OPTIONS = {"top_k": _UNSET, "function_to_apply": None, "return_all_scores": None, **TOKENIZER_OPTIONS}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        config = self.folder.config
        self.id2label = {int(k): v for k, v in (config.get("id2label") or {}).items()}
        self.logits_name = self.session.output_named("logits")

    def shape_results(self, results: list[Any], single: bool, inputs: Any, given: Mapping[str, Any]) -> Any:
        """One input (str or {"text", "text_pair"} dict) gives its result, a list of them a list; transformers wraps
        a lone string's result in a list unless top_k was given in this call."""
        if not single:
            return results
        return [results[0]] if isinstance(inputs, str) and "top_k" not in given else results[0]

    def validate_options(self, options: dict[str, Any]) -> None:
        check_tokenizer_options(options)
        if options["top_k"] != _UNSET:
            check_top_k(options["top_k"], "all labels")
        check_function_to_apply(options)
        check_bool("return_all_scores", options["return_all_scores"], optional=True, must="must be True or False")
        if options["return_all_scores"] is not None and options["top_k"] == _UNSET:
            warnings.warn("`return_all_scores` is deprecated: use top_k=None (all) or top_k=1.", UserWarning, stacklevel=4)

    def check_item(self, item: Any) -> tuple[str, Optional[str]]:
        if isinstance(item, str):
            return (item, None)
        if isinstance(item, dict):
            extra = set(item) - {"text", "text_pair"}
            if "text" not in item or extra or not isinstance(item["text"], str) or not isinstance(item.get("text_pair", ""), str):
                raise InvalidInputError(
                    f"A text-pair input must be a dict {{'text': str, 'text_pair': str}}; got keys {sorted(item)}."
                )
            return (item["text"], item.get("text_pair"))
        raise InvalidInputError(
            f"text-classification takes a string, a {{'text', 'text_pair'}} dict, or a list of those; got "
            f"{type(item).__name__}: {item!r:.80}. For text pairs pass {{'text': ..., 'text_pair': ...}}."
        )

    def prepare(self, items: list[tuple[str, Optional[str]]], options: dict[str, Any]) -> list:
        texts = [text for text, _ in items]
        pairs = [pair for _, pair in items]
        return self.encoder.tokenize(
            texts, pairs if any(p is not None for p in pairs) else None, options["truncation"], options["max_length"]
        )

    def _default_function(self) -> str:
        config = self.folder.config
        problem = config.get("problem_type")
        num_labels = len(self.id2label) if self.id2label else int(config.get("num_labels", 2))
        if problem == "regression":
            return "none"
        if problem == "multi_label_classification" or num_labels == 1:
            return "sigmoid"
        if problem == "single_label_classification" or num_labels > 1:
            return "softmax"
        return str(config.get("function_to_apply", "none")).lower()

    def _label(self, index: int) -> str:
        return self.id2label.get(index, f"LABEL_{index}")

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: EncodedBatch, row: int, options: dict[str, Any]) -> Any:
        top_k, legacy = options["top_k"], options["top_k"] == _UNSET
        if legacy:
            return_all = options["return_all_scores"]
            if return_all is None:
                return_all = self.folder.config.get("return_all_scores")
            top_k = 1
            if return_all is not None:
                top_k = None if return_all else 1
        scores = FUNCTIONS[options["function_to_apply"] or self._default_function()](
            outputs[self.logits_name][row].astype(np.float32)
        )
        if top_k == 1 and legacy:
            return {"label": self._label(int(scores.argmax())), "score": float(scores.max())}
        results = [{"label": self._label(i), "score": float(s)} for i, s in enumerate(scores)]
        if not legacy:
            results.sort(key=lambda r: r["score"], reverse=True)
            if top_k is not None:
                results = results[:top_k]
        return results
