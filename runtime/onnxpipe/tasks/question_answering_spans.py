"""The answer-span search of extractive question answering, step for step as transformers 4.57 does it.

Each window's start/end logits become probabilities over the tokens that may hold an answer (the
context and the CLS token); every (start, end) pair with start <= end < start + max_answer_len is
scored start_prob * end_prob; the best pairs map back to characters of the context, and answers
with the same text (ignoring case) found in several windows add up their scores. The numpy calls,
shapes and dtypes are transformers' own, so ties (spans of score 0 on short contexts) break the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from onnxpipe.maths import softmax

_MASKED_LOGIT = -10000.0  # what transformers writes over tokens that cannot be in an answer
_NO_NULL_SCORE = 1000000  # transformers' "no null score seen yet"


@dataclass
class Window:
    """One tokenized window of a (question, context) pair and what the span search needs from it."""

    encoding: Any  # tokenizers.Encoding: ids, offsets, words and sequence ids of this window
    keep: np.ndarray  # 1 where a token may be part of an answer (context or CLS, not padding), else 0

    def __len__(self) -> int:
        return len(self.encoding)


def window_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    keep: np.ndarray,
    top_k: int,
    max_answer_len: int,
    handle_impossible_answer: bool,
    min_null_score: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Best (start, end, score) token spans of one window and the running null-answer score."""
    masked = keep == 0
    start, end = _probabilities(start_logits, masked), _probabilities(end_logits, masked)
    if handle_impossible_answer:
        min_null_score = min(min_null_score, (start[0] * end[0]).item())
    start[0] = end[0] = 0.0  # the CLS token only ever carries the null answer

    candidates = np.tril(np.triu(np.matmul(start[:, None], end[None, :])), max_answer_len - 1)
    flat = candidates.flatten()
    if top_k == 1:
        order = [np.argmax(flat)]
    elif len(flat) < top_k:
        order = np.argsort(-flat)
    else:
        best = np.argpartition(-flat, top_k)[0:top_k]
        order = best[np.argsort(-flat[best])]
    starts, ends = np.unravel_index(order, candidates.shape)
    allowed = np.flatnonzero(keep)
    if allowed.size:
        # transformers tests membership in keep.nonzero() of a (1, L) mask, whose row indexes (all 0) let
        # position 0 through too; it is the CLS token, which is already allowed, whenever one exists
        allowed = np.union1d(allowed, [0])
    wanted = np.isin(starts, allowed) & np.isin(ends, allowed)
    starts, ends = starts[wanted], ends[wanted]
    return starts, ends, candidates[starts, ends], min_null_score


def _probabilities(logits: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """Softmax over the tokens that may answer (float32, as transformers computes it)."""
    return softmax(np.where(masked, _MASKED_LOGIT, logits))


def char_span(encoding: Any, start: int, end: int, sequence_index: int, align_to_words: bool) -> tuple[int, int]:
    """Character offsets in the context of tokens start..end, widened to whole words when asked."""
    if align_to_words:
        try:
            first = encoding.word_to_chars(encoding.token_to_word(start), sequence_index=sequence_index)[0]
            last = encoding.word_to_chars(encoding.token_to_word(end), sequence_index=sequence_index)[1]
            return first, last
        except Exception:  # special tokens have no word (None): fall back to token offsets, as transformers does
            pass
    return encoding.offsets[start][0], encoding.offsets[end][1]


def answer(
    context: str,
    windows: Sequence[Window],
    logits: Sequence[tuple[np.ndarray, np.ndarray]],
    sequence_index: int,
    options: dict[str, Any],
) -> Any:
    """transformers' result for one question: a dict when one answer remains, else a list of dicts by score."""
    top_k, align = options["top_k"], options["align_to_words"]
    search_k = top_k * 2 + 10 if align else top_k  # aligning to words merges some candidates
    min_null_score: float = _NO_NULL_SCORE
    answers: list[dict[str, Any]] = []
    for window, (start_logits, end_logits) in zip(windows, logits):
        starts, ends, scores, min_null_score = window_spans(
            start_logits, end_logits, window.keep, search_k, options["max_answer_len"],
            options["handle_impossible_answer"], min_null_score,
        )
        for s, e, score in zip(starts, ends, scores):
            first, last = char_span(window.encoding, int(s), int(e), sequence_index, align)
            text = context[first:last]
            same = _find(answers, text)
            if same is not None:
                same["score"] += score.item()
            else:
                answers.append({"score": score.item(), "start": first, "end": last, "answer": text})
    if options["handle_impossible_answer"]:
        answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
    answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
    return answers[0] if len(answers) == 1 else answers


def _find(answers: list[dict[str, Any]], text: str) -> Optional[dict[str, Any]]:
    lowered = text.lower()
    return next((a for a in answers if a["answer"].lower() == lowered), None)
