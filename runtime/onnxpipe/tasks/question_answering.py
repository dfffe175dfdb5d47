"""question-answering: extractive answers {score, start, end, answer} found in a context, as transformers returns them.

A context longer than `max_seq_len` is cut into overlapping windows (`doc_stride` tokens of overlap),
each window holding the whole question; every window is scored and the best spans over all of them win.
Inputs are read as transformers reads them (qa_inputs.py); the span search is transformers' (answer_spans.py).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.options import check_bool, check_int
from onnxpipe.tasks.question_answering_inputs import INPUT_KEYS, parse_inputs
from onnxpipe.tasks.question_answering_spans import Window, answer
from onnxpipe.tasks.text_base import TextPipeline
from onnxpipe.text.tokenizer import EncodedBatch

_PADDINGS = {False: "do_not_pad", "do_not_pad": "do_not_pad", True: "longest", "longest": "longest", "max_length": "max_length"}
_MAX_QUESTION_LEN = 64  # transformers' default; it has no effect with fast tokenizers, the only kind onnxpipe runs


class QuestionAnsweringPipeline(TextPipeline):
    """Answer questions from contexts; options as in transformers: top_k, doc_stride, max_answer_len, max_seq_len,
    max_question_len, handle_impossible_answer, align_to_words, padding, batch_size (windows per model run)."""

    OPTIONS = {
        "top_k": None, "topk": None, "doc_stride": None, "max_answer_len": 15, "max_seq_len": None,
        "max_question_len": _MAX_QUESTION_LEN, "handle_impossible_answer": False, "align_to_words": True,
        "padding": "do_not_pad",
    }

    def setup(self) -> None:
        super().setup()
        cls_token = self.encoder.special_token("cls_token")
        self.cls_id: Optional[int] = self.encoder.tokenizer.token_to_id(cls_token) if cls_token else None
        # transformers puts the question first unless the tokenizer pads on the left
        self.question_first = self.encoder.padding_side != "left"
        self.added_single = self.encoder.tokenizer.num_special_tokens_to_add(False)
        self.added_pair = self.encoder.tokenizer.num_special_tokens_to_add(True)
        self.start_name = self.session.output_named("start_logits")
        self.end_name = self.session.output_named("end_logits", 1)

    # -- call ----------------------------------------------------------------------------------
    def call_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Inputs are every positional argument plus `question=`/`context=` (and transformers' other input
        keywords): strings or lists, a {"question", "context"} dict or a list of them."""
        kwargs = dict(kwargs)
        return (args, {key: kwargs.pop(key) for key in INPUT_KEYS if key in kwargs}), kwargs

    def split_inputs(self, inputs: Any) -> tuple[Union[list[Any], Iterator[Any]], bool]:
        """The (question, context) pairs as transformers reads them (a generator input stays lazy)."""
        return parse_inputs(*inputs), False

    def check_item(self, item: Any) -> Any:
        return item  # parse_inputs checked the pairs

    def shape_results(self, results: list[Any], single: bool, inputs: Any, given: Mapping[str, Any]) -> Any:
        """One input gives a dict (a list of dicts when top_k > 1 finds several answers); several give a list:
        transformers unwraps any one-item input."""
        return results[0] if len(results) == 1 else results

    def run_items(self, examples: Sequence[tuple[str, str]], options: dict[str, Any]) -> list[Any]:
        """One result per (question, context) pair, in order."""
        if not examples:
            return []
        windows = self.windows(examples, options)
        flat = [window for example_windows in windows for window in example_windows]
        logits = iter(self.run_pieces(flat, options))
        sequence_index = 1 if self.question_first else 0
        top_k = next((k for k in (options["top_k"], options["topk"]) if k is not None), 1)  # top_k wins over topk
        search = {**options, "top_k": top_k}
        return [
            answer(context, example_windows, [next(logits) for _ in example_windows], sequence_index, search)
            for (_, context), example_windows in zip(examples, windows)
        ]

    # -- options -------------------------------------------------------------------------------
    def validate_options(self, options: dict[str, Any]) -> None:
        if options["topk"] is not None:
            warnings.warn("topk parameter is deprecated, use top_k instead", UserWarning, stacklevel=4)
        for name in ("top_k", "topk", "doc_stride", "max_answer_len", "max_seq_len", "max_question_len"):
            check_int(name, options[name], minimum=0 if name == "doc_stride" else 1, optional=True)
        for name in ("handle_impossible_answer", "align_to_words"):
            check_bool(name, options[name])
        if not isinstance(options["padding"], (bool, str)) or options["padding"] not in _PADDINGS:
            raise InvalidOptionError(
                f"padding must be one of False/'do_not_pad', True/'longest', 'max_length'; got {options['padding']!r}."
            )
        if options["max_question_len"] != _MAX_QUESTION_LEN:
            warnings.warn(
                "max_question_len has no effect, as in transformers with fast tokenizers: questions are never "
                "truncated (a question too long for max_seq_len raises an error).",
                UserWarning,
                stacklevel=4,
            )
        self.lengths(options)

    def lengths(self, options: dict[str, Any]) -> tuple[int, int]:
        """(max_seq_len, doc_stride) of a call: transformers' defaults, checked against the tokenizer's rules."""
        max_seq_len = options["max_seq_len"]
        if max_seq_len is None:
            max_seq_len = min(self.encoder.model_max_length or 384, 384)
        doc_stride = options["doc_stride"]
        if doc_stride is None:
            doc_stride = min(max_seq_len // 2, 128)
        if max_seq_len <= self.added_pair:
            raise InvalidOptionError(
                f"max_seq_len ({max_seq_len}) leaves no room for the context next to the {self.added_pair} special "
                f"tokens of a question/context pair; use a larger max_seq_len (the model takes {self.encoder.model_max_length})."
            )
        if doc_stride > max_seq_len:
            raise InvalidOptionError(
                f"`doc_stride` ({doc_stride}) is larger than `max_seq_len` ({max_seq_len}); lower doc_stride."
            )
        if doc_stride > max_seq_len - self.added_single:
            raise InvalidOptionError(
                f"doc_stride ({doc_stride}) must be at most max_seq_len ({max_seq_len}) minus the tokenizer's "
                f"{self.added_single} special tokens; lower doc_stride (default: max_seq_len // 2)."
            )
        return max_seq_len, doc_stride

    # -- tokenization --------------------------------------------------------------------------
    def windows(self, examples: Sequence[tuple[str, str]], options: dict[str, Any]) -> list[list[Window]]:
        """The overlapping windows of each (question, context) pair, as transformers' tokenizer call makes them."""
        max_seq_len, doc_stride = self.lengths(options)
        self._check_room(examples, max_seq_len, doc_stride)
        strategy = "only_second" if self.question_first else "only_first"
        tokenizer = self.encoder.configured(max_seq_len, stride=doc_stride, strategy=strategy)
        pairs = [(q, c) if self.question_first else (c, q) for q, c in examples]
        try:
            encodings = tokenizer.encode_batch(pairs)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # the Rust tokenizer panics (PanicException, no Exception subclass) on some inputs
            raise InvalidInputError(
                f"The tokenizer could not cut a question/context pair into windows of max_seq_len={max_seq_len} "
                f"with doc_stride={doc_stride}: {str(exc).splitlines()[0][:200]}. Shorten the question or lower doc_stride."
            ) from exc
        padding = _PADDINGS[options["padding"]]
        result = []
        for encoding in encodings:
            parts = [encoding] + list(encoding.overflowing)
            if padding != "do_not_pad":
                width = max_seq_len if padding == "max_length" else max(len(part) for part in parts)
                for part in parts:
                    part.pad(width, direction=self.encoder.padding_side, pad_id=self.encoder.pad_id,
                             pad_token=self.encoder.pad_token or "[PAD]")
            result.append([self._window(part, max_seq_len) for part in parts])
        return result

    def _check_room(self, examples: Sequence[tuple[str, str]], max_seq_len: int, doc_stride: int) -> None:
        """Raise before tokenizing when a question leaves a window no room for more context than the stride."""
        tokenizer = self.encoder.tokenizer
        questions = tokenizer.encode_batch([q for q, _ in examples], add_special_tokens=False)
        for (question, context), encoded in zip(examples, questions):
            room = max_seq_len - len(encoded) - self.added_pair
            if room > doc_stride:
                continue
            total = len(encoded) + len(tokenizer.encode(context, add_special_tokens=False)) + self.added_pair
            if total <= max_seq_len:
                continue  # fits in one window: nothing to cut
            why = (
                "leaves no room for the context" if room <= 0
                else f"leaves room for {room} context tokens per window, which must be more than doc_stride={doc_stride}"
            )
            raise InvalidInputError(
                f"The question {question!r:.60} has {len(encoded)} tokens; with {self.added_pair} special tokens and "
                f"max_seq_len={max_seq_len} it {why}. Shorten the question, raise max_seq_len (the model takes "
                f"{self.encoder.model_max_length}) or lower doc_stride."
            )

    def _window(self, encoding: Any, max_seq_len: int) -> Window:
        limit = self.encoder.model_max_length
        if limit is not None and len(encoding) > limit:
            raise InvalidInputError(
                f"A window of {len(encoding)} tokens is longer than the model takes ({limit}); "
                f"lower max_seq_len (got {max_seq_len})."
            )
        # only context tokens may answer (transformers masks nothing when the context comes first: we mask the
        # question in both orders), and the CLS token, which carries the "no answer" score
        context_index = 1 if self.question_first else 0
        p_mask = np.array([sequence != context_index for sequence in encoding.sequence_ids], dtype=np.int64)
        if self.cls_id is not None:
            p_mask[np.asarray(encoding.ids) == self.cls_id] = 0
        return Window(encoding, np.abs(p_mask - 1) & np.asarray(encoding.attention_mask, dtype=np.int64))

    # -- running -------------------------------------------------------------------------------
    def prepare(self, items: Sequence[Window], options: dict[str, Any]) -> list[Window]:
        return list(items)

    def collate(self, pieces: Sequence[Window], options: dict[str, Any]) -> WindowBatch:
        """Windows padded on the right whatever the tokenizer's side: with absolute positions (BERT), left padding
        would shift every position and change the answers, so a batch gives what one window at a time gives."""
        width = max(len(piece) for piece in pieces)
        ids = np.full((len(pieces), width), self.encoder.pad_id, dtype=np.int64)
        mask = np.zeros((len(pieces), width), dtype=np.int64)
        types = np.zeros((len(pieces), width), dtype=np.int64)
        for row, piece in enumerate(pieces):
            n = len(piece)
            ids[row, :n] = piece.encoding.ids
            mask[row, :n] = piece.encoding.attention_mask  # zeros where the padding option padded the window
            types[row, :n] = piece.encoding.type_ids
        return WindowBatch(ids, mask, types, tuple(len(piece) for piece in pieces))

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: WindowBatch, row: int, options: dict[str, Any]) -> Any:
        """The window's own start and end logits, without the batch's padding."""
        n = encoded.lengths[row]
        return outputs[self.start_name][row, :n].astype(np.float32), outputs[self.end_name][row, :n].astype(np.float32)


@dataclass(frozen=True)
class WindowBatch(EncodedBatch):
    """A padded batch of windows that remembers each window's length."""

    lengths: tuple = ()
