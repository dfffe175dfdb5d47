"""Batch tokenization with the Rust `tokenizers`: padding to the longest, truncation with a warning, pairs.

It reads tokenizer.json plus tokenizer_config.json the way transformers' fast tokenizers do, and
returns numpy arrays ready for onnxruntime.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from onnxpipe.errors import CorruptModelError, InvalidInputError
from onnxpipe.model_folder import ModelFolder

# transformers' sentinel for "no limit" (VERY_LARGE_INTEGER) and anything near it
_NO_LIMIT = 10**8
# model types whose position ids start after padding_idx, so usable positions are max_position_embeddings - 2
_OFFSET_POSITION_TYPES = {"roberta", "xlm-roberta", "camembert", "longformer", "bart", "mbart", "data2vec-text"}


@dataclass(frozen=True)
class EncodedBatch:
    """Token arrays for one batch, shape (batch, longest)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray

    def feeds(self) -> dict[str, np.ndarray]:
        """The arrays keyed by the input names transformers' ONNX exports use."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "token_type_ids": self.token_type_ids}


class TextEncoder:
    """The model folder's tokenizer with transformers' padding and truncation rules."""

    def __init__(self, folder: ModelFolder):
        from tokenizers import Tokenizer

        path = folder.require(
            "tokenizer.json",
            "onnxpipe reads with the Rust tokenizers (export the model with `onnxpipe export`, which writes it, "
            "or save a fast tokenizer there with transformers' save_pretrained)",
        )
        try:
            self.tokenizer = GuardedTokenizer(Tokenizer.from_file(str(path)))
        except Exception as exc:  # noqa: BLE001 - the Rust tokenizers raise a bare Exception for a broken file
            raise CorruptModelError(
                f"{path} cannot be read by the Rust tokenizers ({exc}); restore it or re-export the model."
            ) from exc
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        # one configured tokenizer per truncation setting, never reconfigured, so calls from many threads are safe
        self._configured: dict[tuple, Any] = {(None, 0, "longest_first"): self.tokenizer}
        self._lock = threading.Lock()
        config = folder.read_json("tokenizer_config.json")
        self._special_sources = (config, folder.read_json("special_tokens_map.json"))
        self.model_max_length = max_input_length(config, folder.config)
        self.padding_side = config.get("padding_side", "right")
        # transformers' fast tokenizers clean up spaces before punctuation after decoding when this is set
        self.clean_up_spaces = bool(config.get("clean_up_tokenization_spaces", False))
        self.pad_token = self.special_token("pad_token")
        pad_id = self.tokenizer.token_to_id(self.pad_token) if self.pad_token else None
        self.pad_id = pad_id if pad_id is not None else int(folder.config.get("pad_token_id") or 0)

    def tokenize(
        self,
        texts: Sequence[str],
        pairs: Optional[Sequence[Optional[str]]] = None,
        truncation: bool = True,
        max_length: Optional[int] = None,
        strategy: str = "longest_first",
    ) -> list:
        """Tokenize texts (with optional second texts) into unpadded encodings, truncated to the model's limit.

        `strategy` is transformers' truncation strategy for pairs (longest_first, only_first, only_second).
        Truncation warns with the count of inputs it shortened; with truncation=False an over-long input
        raises, since the model cannot take it.
        """
        limit = self.model_max_length if max_length is None else max_length
        if limit is not None and self.model_max_length is not None and limit > self.model_max_length:
            warnings.warn(
                f"max_length={limit} is longer than the model takes ({self.model_max_length} tokens); inputs are "
                f"truncated to {self.model_max_length} tokens instead.",
                UserWarning,
                stacklevel=5,
            )
            limit = self.model_max_length
        items = list(texts) if pairs is None else [
            (text, pair) if pair is not None else text for text, pair in zip(texts, pairs)
        ]
        encodings = self.configured(limit if truncation else None, strategy=strategy).encode_batch(items)
        truncated = sum(1 for enc in encodings if enc.overflowing)
        if truncated:
            warnings.warn(
                f"{truncated} input(s) were longer than {limit} tokens and were truncated to fit the model; "
                "pass truncation=False to get an error instead.",
                UserWarning,
                stacklevel=5,
            )
        longest = max(len(enc) for enc in encodings)
        if not truncation and self.model_max_length is not None and longest > self.model_max_length:
            raise InvalidInputError(
                f"An input has {longest} tokens but the model takes at most {self.model_max_length}; "
                "shorten it or pass truncation=True."
            )
        return encodings

    def special_token(self, name: str) -> Optional[str]:
        """A special token's text ("pad_token", "unk_token", "mask_token"...) from tokenizer_config.json, else
        special_tokens_map.json; None when neither names it."""
        for source in self._special_sources:
            token = token_content(source.get(name))
            if isinstance(token, str) and token:
                return token
        return None

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Token ids to text as transformers' fast tokenizers decode them: the Rust decoder, then
        `clean_up_tokenization` when tokenizer_config.json sets clean_up_tokenization_spaces."""
        text = self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
        return clean_up_tokenization(text) if self.clean_up_spaces else text

    def configured(self, limit: Optional[int], stride: int = 0, strategy: str = "longest_first") -> Any:
        """A Rust tokenizer that truncates to `limit` tokens (None: no truncation), keeping `stride` tokens of
        overlap in its overflowing windows, with transformers' strategy names (longest_first, only_first,
        only_second). Built once per setting and never changed, so it may be shared by threads."""
        key = (limit, stride if limit is not None else 0, strategy if limit is not None else "longest_first")
        if key not in self._configured:
            with self._lock:
                if key not in self._configured:
                    from tokenizers import Tokenizer

                    tokenizer = Tokenizer.from_str(self.tokenizer.to_str())
                    tokenizer.enable_truncation(limit, stride=stride, strategy=strategy)
                    self._configured[key] = GuardedTokenizer(tokenizer)
        return self._configured[key]

    def pad(self, encodings: Sequence) -> EncodedBatch:
        """Pad encodings to the longest among them, on the tokenizer's padding side."""
        width = max(len(enc) for enc in encodings)
        batch = len(encodings)
        ids = np.full((batch, width), self.pad_id, dtype=np.int64)
        mask = np.zeros((batch, width), dtype=np.int64)
        types = np.zeros((batch, width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            cols = slice(width - n, width) if self.padding_side == "left" else slice(0, n)
            ids[row, cols] = enc.ids
            mask[row, cols] = 1
            types[row, cols] = enc.type_ids
        return EncodedBatch(ids, mask, types)


class GuardedTokenizer:
    """A Rust tokenizer whose `encode` / `encode_batch` turn the TypeError they raise for text Python holds but
    UTF-8 cannot (a lone surrogate such as "\\ud800", e.g. from a JSON escape) into an InvalidInputError naming the
    text. Everything else is the wrapped tokenizer's; the happy path costs one call."""

    def __init__(self, inner: Any):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._inner.encode(*args, **kwargs)
        except TypeError:
            check_encodable(args[:2])
            raise

    def encode_batch(self, items: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return self._inner.encode_batch(items, *args, **kwargs)
        except TypeError:
            check_encodable(items)
            raise


def check_encodable(items: Any) -> None:
    """InvalidInputError naming the first text (in `items`: strings, pairs of strings) that is not valid Unicode
    text, i.e. holds a lone surrogate code point that UTF-8 cannot encode."""
    stack = [items]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidInputError(
                    f"Input text {item[:40]!r} holds {item[exc.start]!r} at position {exc.start}, a lone surrogate that "
                    "is not valid Unicode text; send text without it (a JSON escape such as \\ud800 must be one half "
                    "of a pair)."
                ) from None
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))


def clean_up_tokenization(text: str) -> str:
    """transformers' `clean_up_tokenization`: drop the space before punctuation and English contractions."""
    for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(before, after)
    return text


def token_content(token: Any) -> Any:
    """The text of a special token as tokenizer_config.json, special_tokens_map.json or vocab files store it: a plain
    string as is, an AddedToken dict ({"content": ..., "lstrip": ...}) as its "content"; None stays None."""
    if isinstance(token, dict):
        return token.get("content")
    return token


def max_input_length(tokenizer_config: dict, model_config: dict) -> Optional[int]:
    """The longest input the model takes: tokenizer_config's model_max_length, else from the positions."""
    declared = tokenizer_config.get("model_max_length")
    if isinstance(declared, (int, float)) and declared < _NO_LIMIT:
        return int(declared)
    positions = model_config.get("max_position_embeddings")
    if isinstance(positions, int):
        return positions - 2 if model_config.get("model_type") in _OFFSET_POSITION_TYPES else positions
    return None
