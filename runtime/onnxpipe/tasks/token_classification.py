"""token-classification (alias ner): transformers' entity dicts, from the Rust tokenizer's offsets.

Each text is tokenized once (truncated to the model's limit, or cut into overlapping windows when
`stride` is given), windows of similar length run together, and each window's label scores become
entities by transformers' rules (see token_aggregation.py). Windows of one text are then merged and
de-duplicated exactly as transformers does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.maths import softmax
from onnxpipe.options import check_bool, check_int
from onnxpipe.tasks.text_base import TOKENIZER_OPTIONS, TextPipeline, check_tokenizer_options
from onnxpipe.tasks.token_classification_entities import (
    STRATEGIES,
    WORD_STRATEGIES,
    TokenText,
    aggregate,
    aggregate_overlapping_entities,
    gather_pre_entities,
)
from onnxpipe.text.tokenizer import EncodedBatch

# options transformers takes that onnxpipe refuses, with the reason and the fix
_REFUSED = {
    "offset_mapping": "is transformers' workaround for slow tokenizers; onnxpipe's Rust tokenizer gives exact "
    "character offsets itself: drop the option",
    "is_split_into_words": "(pre-split words) is not implemented; join the words with spaces and pass the string",
    "delimiter": "only applies to is_split_into_words, which is not implemented; pass the joined string",
}


@dataclass(frozen=True)
class Window:
    """One model input: a text's encoding (or one of its stride windows) and which text it came from."""

    item: int
    text: str
    encoding: Any  # tokenizers.Encoding

    def __len__(self) -> int:
        return len(self.encoding.ids)


@dataclass(frozen=True)
class WindowBatch:
    """A padded batch of windows; feeds() is the padded arrays'."""

    encoded: EncodedBatch
    windows: Sequence[Window]

    def feeds(self) -> dict[str, np.ndarray]:
        return self.encoded.feeds()


class TokenClassificationPipeline(TextPipeline):
    """Label each token (or word, or entity span) of texts; options as in transformers: aggregation_strategy,
    ignore_labels, stride, grouped_entities / ignore_subwords (deprecated), batch_size; plus truncation and
    max_length (the window length)."""

    OPTIONS = {
        "aggregation_strategy": "none",
        "ignore_labels": None,
        "stride": None,
        "grouped_entities": None,
        "ignore_subwords": None,
        **{name: None for name in _REFUSED},
        **TOKENIZER_OPTIONS,
    }

    def setup(self) -> None:
        super().setup()
        config = self.folder.config
        num_labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
        self.id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        self.id2label.update({int(k): v for k, v in (config.get("id2label") or {}).items()})
        self.logits_name = self.session.output_named("logits")
        unk = self.encoder.special_token("unk_token")
        self.text = TokenText(self.encoder.tokenizer, self.encoder.tokenizer.token_to_id(unk) if unk else None)

    def run_items(self, texts: Sequence[str], options: dict[str, Any]) -> list[list[dict]]:
        """Entities of each text (one string gives a list of dicts, a list of strings a list of such lists): its
        windows run in batches, then the entities of a text's windows are merged."""
        if options["aggregation_strategy"] in WORD_STRATEGIES and not self.text.word_aware:
            warnings.warn("Tokenizer does not support real words, using fallback heuristic", UserWarning, stacklevel=3)
        windows = self.windows(texts, options, stacklevel=4)
        per_window = self.run_pieces(windows, options)
        results: list[list[dict]] = [[] for _ in texts]
        counts = [0] * len(texts)
        for window, entities in zip(windows, per_window):
            results[window.item].extend(entities)
            counts[window.item] += 1
        return [
            [_plain(e) for e in (aggregate_overlapping_entities(r) if n > 1 else r)] for r, n in zip(results, counts)
        ]

    # -- options -------------------------------------------------------------------------------
    def validate_options(self, options: dict[str, Any]) -> None:
        check_tokenizer_options(options)
        for name, why in _REFUSED.items():
            if options[name] not in (None, False):
                raise InvalidOptionError(f"{name}={options[name]!r:.60}: {name} {why}.")
        _resolve_deprecated(options)
        strategy = getattr(options["aggregation_strategy"], "value", options["aggregation_strategy"])
        if not isinstance(strategy, str) or strategy.lower() not in STRATEGIES:
            raise InvalidOptionError(
                f"aggregation_strategy must be one of {', '.join(STRATEGIES)}, got {options['aggregation_strategy']!r}."
            )
        options["aggregation_strategy"] = strategy = strategy.lower()
        ignore = options["ignore_labels"]
        if ignore is not None:
            if not isinstance(ignore, (list, tuple, set, frozenset)) or not all(isinstance(x, str) for x in ignore):
                raise InvalidOptionError(f"ignore_labels must be a list of label names such as ['O'], got {ignore!r}.")
            options["ignore_labels"] = list(ignore)
        self._check_stride(options, strategy)

    def _check_stride(self, options: dict[str, Any], strategy: str) -> None:
        stride, window = options["stride"], self._window_length(options)
        if options["max_length"] is not None and self._model_limit() is not None and options["max_length"] > self._model_limit():
            raise InvalidOptionError(
                f"max_length={options['max_length']} is longer than the model takes ({self._model_limit()} tokens); "
                "pass a smaller max_length or leave it unset."
            )
        if stride is None:
            return
        check_int("stride", stride, minimum=0, must="must be an int >= 0 (tokens shared by consecutive windows)")
        if strategy == "none":
            raise InvalidOptionError(
                "stride needs entities to merge across windows: pass aggregation_strategy='simple', 'first', "
                "'average' or 'max' with it (transformers refuses 'none' too)."
            )
        if window is None or not hasattr(self, "encoder"):
            return  # no limit known: nothing to cut into windows / tokenizer not loaded yet (checked again after)
        room = window - self.encoder.tokenizer.num_special_tokens_to_add(False)
        if stride >= room:
            raise InvalidOptionError(
                f"stride={stride} must be smaller than the {room} text tokens a {window}-token window holds "
                f"(after its special tokens); pass stride <= {room - 1}."
            )

    def _model_limit(self) -> Optional[int]:
        return self.encoder.model_max_length if hasattr(self, "encoder") else None

    def _window_length(self, options: dict[str, Any]) -> Optional[int]:
        return options["max_length"] if options["max_length"] is not None else self._model_limit()

    # -- running -------------------------------------------------------------------------------
    def windows(self, texts: Sequence[str], options: dict[str, Any], stacklevel: int = 3) -> list[Window]:
        """The model inputs of `texts`: one truncated encoding per text, or all its stride windows (`stacklevel`
        points the truncation warning at the caller's code)."""
        limit, stride = self._window_length(options), options["stride"]
        if stride is not None and limit is not None:
            encodings = self.encoder.configured(limit, stride).encode_batch(list(texts))
            return [
                Window(item, text, enc)
                for item, (text, enc) in enumerate(zip(texts, encodings))
                for enc in [enc, *enc.overflowing]
            ]
        if not options["truncation"]:
            limit = None
        encodings = self.encoder.configured(limit).encode_batch(list(texts))
        cut = sum(1 for enc in encodings if enc.overflowing)
        if cut:
            warnings.warn(
                f"{cut} input(s) were longer than {limit} tokens and were truncated to fit the model, as transformers "
                "does; pass stride=N (with an aggregation_strategy other than 'none') to label the whole text, or "
                "truncation=False to get an error instead.",
                UserWarning,
                stacklevel=stacklevel,
            )
        longest = max(len(enc) for enc in encodings)
        model_limit = self._model_limit()
        if model_limit is not None and longest > model_limit:
            raise InvalidInputError(
                f"An input has {longest} tokens but the model takes at most {model_limit}; pass stride=N with "
                "aggregation_strategy='simple' to label it window by window, or truncation=True to cut it."
            )
        return [Window(item, text, enc) for item, (text, enc) in enumerate(zip(texts, encodings))]

    def prepare(self, items: Sequence[Window], options: dict[str, Any]) -> list[Window]:
        return list(items)  # already tokenized by windows()

    def collate(self, pieces: Sequence[Window], options: dict[str, Any]) -> WindowBatch:
        return WindowBatch(self.encoder.pad([w.encoding for w in pieces]), list(pieces))

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: WindowBatch, row: int, options: dict[str, Any]) -> list[dict]:
        window = encoded.windows[row]
        enc, n = window.encoding, len(window)
        logits = outputs[self.logits_name][row].astype(np.float32)
        logits = logits[-n:] if self.encoder.padding_side == "left" else logits[:n]
        pre = gather_pre_entities(window.text, enc.ids, softmax(logits), enc.offsets, enc.special_tokens_mask, self.text)
        entities = aggregate(pre, options["aggregation_strategy"], self.id2label, self.text)
        ignore = ["O"] if options["ignore_labels"] is None else options["ignore_labels"]
        return [e for e in entities if e.get("entity") not in ignore and e.get("entity_group") not in ignore]


def _resolve_deprecated(options: dict[str, Any]) -> None:
    """transformers' mapping of grouped_entities / ignore_subwords onto aggregation_strategy (with its warning).

    Resolved where they are given, then cleared, so a pipeline-level default never overrides a later call's
    aggregation_strategy (as in transformers, where each call's parameters are sanitized on their own)."""
    grouped, ignore = options["grouped_entities"], options["ignore_subwords"]
    if grouped is None and ignore is None:
        return
    for name in ("grouped_entities", "ignore_subwords"):
        check_bool(name, options[name], optional=True)
    strategy = "first" if grouped and ignore else "simple" if grouped and not ignore else "none"
    for name in ("grouped_entities", "ignore_subwords"):
        if options[name] is not None:
            warnings.warn(
                f"`{name}` is deprecated and will be removed in version v5.0.0, defaulted to "
                f'`aggregation_strategy="{strategy}"` instead.',
                UserWarning,
                stacklevel=5,
            )
    options.update(aggregation_strategy=strategy, grouped_entities=None, ignore_subwords=None)


def _plain(entity: dict) -> dict:
    """The entity with a Python float score (transformers leaves a numpy float32; JSON needs a float)."""
    return {key: float(value) if key == "score" else value for key, value in entity.items()}
