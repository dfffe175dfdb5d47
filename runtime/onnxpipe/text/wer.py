"""Word error rate: word-level Levenshtein distance over a light English normalization.

Normalization (a light version of Whisper's English text normalizer, documented so figures can be reproduced):
Unicode NFKC, lower case, apostrophes dropped inside words ("don't" -> "dont"), every other character that is
not a letter, a digit or whitespace replaced by a space (punctuation, symbols, Whisper's "<|...|>" leftovers),
then whitespace collapsed. Numbers are not spelled out and spellings are not unified ("colour" stays).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Sequence

_APOSTROPHES = re.compile(r"(?<=\w)['’](?=\w)")
_NOT_WORD = re.compile(r"[^\w\s]|_")


def normalize(text: str) -> str:
    """The text as WER compares it: NFKC, lower case, no punctuation or symbols, single spaces."""
    if not isinstance(text, str):
        raise TypeError(f"normalize() takes a string, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).lower()
    text = _APOSTROPHES.sub("", text)
    return " ".join(_NOT_WORD.sub(" ", text).split())


def words(text: str) -> list[str]:
    """The normalized words of `text`."""
    return normalize(text).split()


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Levenshtein distance between two word sequences (substitutions, insertions, deletions all cost 1)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words) of one pair of texts after normalization."""
    ref, hyp = words(reference), words(hypothesis)
    return edit_distance(ref, hyp), len(ref)


def wer(references: Sequence[str] | str, hypotheses: Sequence[str] | str) -> float:
    """Corpus word error rate: total word edits over total reference words (0.0 when both are empty, and 1.0 per
    inserted word when only the references are). Takes two texts or two equally long lists of texts."""
    if isinstance(references, str) != isinstance(hypotheses, str):
        raise TypeError("wer() takes two texts or two lists of texts, not one of each.")
    if isinstance(references, str):
        references, hypotheses = [references], [hypotheses]  # type: ignore[list-item]
    if len(references) != len(hypotheses):
        raise ValueError(f"wer() got {len(references)} references and {len(hypotheses)} hypotheses; pass one per clip.")
    edits = total = 0
    for ref, hyp in zip(references, hypotheses):
        e, n = word_errors(ref, hyp)
        edits, total = edits + e, total + n
    if total == 0:
        return 0.0 if edits == 0 else float(edits)
    return edits / total
