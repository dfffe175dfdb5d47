"""Deterministic benchmark texts that tokenize to an exact number of tokens with the model's own tokenizer.

Every engine gets the very same strings; lengths are checked with the folder's tokenizer.json (the Rust
`tokenizers`, which is what onnxpipe and the transformers fast tokenizer both run).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

# plain English prose to draw word sequences from (written for this harness)
PASSAGE = """
The river runs past the old mill and under the stone bridge before it reaches the town. In spring the water
rises and the fields along the bank turn green within a few weeks. Farmers bring their goods to the market on
Saturday mornings, and the square fills with carts, children and the smell of fresh bread. The library opens at
nine and closes at six, except on Sundays, when it stays closed all day. Last year the council decided to repair
the roads, build a new school and plant trees along the main street. Some people were happy with the plan, while
others said the money should have gone to the hospital instead. Travelers often stop at the small hotel near the
station, where the rooms are clean and the staff are friendly. The museum holds paintings, maps and letters that
tell the story of the region over three hundred years. A short walk up the hill leads to a view of the valley,
the forest beyond it and, on clear days, the mountains far to the north. Scientists from the university measure
the temperature of the lake every week and publish their results online. The weather changed quickly that
afternoon: dark clouds came in from the west, the wind grew stronger and heavy rain began to fall. Nobody
expected the game to be cancelled, but the field was flooded and the players went home early. She wrote three
books about the history of music, and the second one won an award for its careful research. Customers complained
that the delivery was late, the package was damaged and the support team never answered their emails.
"""
WORDS = PASSAGE.split()


def _token_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer.encode(text).ids)


def _filler(tokenizer: Any) -> str:
    """A word that adds exactly one token wherever it is appended."""
    for word in ("the", "a", "and", "of", "x"):
        if _token_count(tokenizer, "x " + word) - _token_count(tokenizer, "x") == 1:
            return word
    raise ValueError("the tokenizer has no single-token filler word")


def text_of_length(tokenizer: Any, length: int, seed: int) -> str:
    """A text of `length` tokens (special tokens included) starting at a seed-chosen place in the passage."""
    start = random.Random(seed).randrange(len(WORDS))
    words = [WORDS[(start + i) % len(WORDS)] for i in range(4 * length)]
    low, high = 1, len(words)  # the most words whose encoding fits in `length` tokens
    while low < high:
        mid = (low + high + 1) // 2
        if _token_count(tokenizer, " ".join(words[:mid])) <= length:
            low = mid
        else:
            high = mid - 1
    text = " ".join(words[:low])
    filler = _filler(tokenizer)
    while _token_count(tokenizer, text) < length:
        text += " " + filler
    if _token_count(tokenizer, text) != length:  # cannot happen with a filler of one token; kept as a guard
        raise ValueError(f"could not build a text of exactly {length} tokens")
    return text


def load_tokenizer(folder: Path) -> Any:
    """The folder's tokenizer.json with padding and truncation off."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def make_texts(folder: Path, count: int, length: int, seed: int = 0) -> list[str]:
    """`count` different texts of exactly `length` tokens each, the same on every call with the same arguments."""
    tokenizer = load_tokenizer(folder)
    shortest = _token_count(tokenizer, "")  # the special tokens alone
    if length <= shortest:
        raise ValueError(f"seq-len {length} leaves no room for text after {shortest} special tokens")
    return [text_of_length(tokenizer, length, seed * 1000 + i) for i in range(count)]
