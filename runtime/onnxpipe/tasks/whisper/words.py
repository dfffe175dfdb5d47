"""Whisper tokens grouped into words with their times, as transformers 4.57's tokenizer does for word timestamps
(`_collate_word_timestamps`, `_combine_tokens_into_words`).

Tokens are first cut where their decoded text is whole Unicode (a byte-level token may hold part of a character);
in languages written with spaces those pieces are joined into words, a new word starting at a piece that begins
with a space, is punctuation, or is special. Opening punctuation then joins the word after it and closing
punctuation the word before it. A word spans from its first token's start to its last token's end.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

REPLACEMENT = "\ufffd"
PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
PREPENDED = "\"'“¡¿([{-"
APPENDED = "\"'.。,，!！?？:：”)]}、"
UNSPACED_LANGUAGES = frozenset({"chinese", "japanese", "thai", "lao", "myanmar", "cantonese"})

Decode = Callable[[Sequence[int]], str]


def split_on_unicode(decode: Decode, tokens: Sequence[int]) -> tuple[list[str], list[list[int]], list[list[int]]]:
    """(texts, token ids, token positions) of the shortest runs of tokens that decode to whole characters."""
    full = decode(tokens)
    texts: list[str] = []
    ids: list[list[int]] = []
    positions: list[list[int]] = []
    current: list[int] = []
    where: list[int] = []
    offset = 0
    for index, token in enumerate(tokens):
        current.append(token)
        where.append(index)
        text = decode(current)
        # a replacement character that the whole text also has at that place is a real one, not a cut character
        at = offset + text.index(REPLACEMENT) if REPLACEMENT in text else -1
        if at < 0 or (at < len(full) and full[at] == REPLACEMENT):
            texts.append(text)
            ids.append(current)
            positions.append(where)
            current, where = [], []
            offset += len(text)
    return texts, ids, positions


def split_on_spaces(decode: Decode, tokens: Sequence[int], eos_token_id: int) -> tuple[list[str], list[list[int]], list[list[int]]]:
    """Whole-character pieces joined into words at spaces, punctuation and special tokens."""
    words: list[str] = []
    ids: list[list[int]] = []
    positions: list[list[int]] = []
    for text, piece, where in zip(*split_on_unicode(decode, tokens)):
        starts_word = piece[0] >= eos_token_id or text.startswith(" ") or text.strip() in PUNCTUATION or not words
        if starts_word:
            words.append(text)
            ids.append(list(piece))
            positions.append(list(where))
        else:
            words[-1] += text
            ids[-1].extend(piece)
            positions[-1].extend(where)
    return words, ids, positions


def merge_punctuation(words: list[str], ids: list[list[int]], positions: list[list[int]]) -> None:
    """Join opening punctuation to the next word and closing punctuation to the previous one, in place."""
    i, j = len(words) - 2, len(words) - 1
    while i >= 0:
        if words[i].startswith(" ") and words[i].strip() in PREPENDED:
            words[j], ids[j], positions[j] = words[i] + words[j], ids[i] + ids[j], positions[i] + positions[j]
            words[i], ids[i], positions[i] = "", [], []
        else:
            j = i
        i -= 1
    i, j = 0, 1
    while j < len(words):
        if not words[i].endswith(" ") and words[j] in APPENDED:
            words[i], ids[i], positions[i] = words[i] + words[j], ids[i] + ids[j], positions[i] + positions[j]
            words[j], ids[j], positions[j] = "", [], []
        else:
            i = j
        j += 1
    words[:] = [w for w in words if w]
    ids[:] = [t for t in ids if t]
    positions[:] = [p for p in positions if p]


def combine_into_words(decode: Decode, tokens: Sequence[int], eos_token_id: int,
                       language: Optional[str]) -> tuple[list[str], list[list[int]], list[list[int]]]:
    """(words, token ids, token positions) of a run of text tokens (`language` a name such as "english")."""
    if (language or "english") in UNSPACED_LANGUAGES:
        words, ids, positions = split_on_unicode(decode, tokens)
    else:
        words, ids, positions = split_on_spaces(decode, tokens, eos_token_id)
    merge_punctuation(words, ids, positions)
    return words, ids, positions


def word_chunks(decode: Decode, tokens: Sequence[int], times: Sequence[tuple[float, float]], eos_token_id: int,
                language: Optional[str], return_language: Any) -> list[dict[str, Any]]:
    """The pipeline's word chunks: {"text", "timestamp": (start, end)} (and "language" when asked) per word."""
    words, _, positions = combine_into_words(decode, tokens, eos_token_id, language)
    extra = {"language": language} if return_language else {}
    return [{"text": word, "timestamp": (times[where[0]][0], times[where[-1]][1]), **extra}
            for word, where in zip(words, positions)]
