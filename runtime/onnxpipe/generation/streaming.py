"""Streamers: text pieces as tokens are generated, with transformers' TextStreamer rules.

generate() calls `put(ids)` with the prompt, then with each new token, and `end()` at the end. A streamer
decodes its cached tokens and releases text up to the last space, at once after a newline or a CJK
character, and holds back text ending in U+FFFD (a multi-byte character whose bytes are split across
tokens) until the character is complete. The pieces concatenate to the decoded generated text.
They take a `decode` callable (ids -> text) instead of a tokenizer.
"""

from __future__ import annotations

import queue
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

Decode = Callable[[Sequence[int]], str]


def is_cjk(codepoint: int) -> bool:
    """Whether a code point is in the CJK Unified Ideographs blocks (transformers' `_is_chinese_char`)."""
    return (
        0x4E00 <= codepoint <= 0x9FFF
        or 0x3400 <= codepoint <= 0x4DBF
        or 0x20000 <= codepoint <= 0x2A6DF
        or 0x2A700 <= codepoint <= 0x2B73F
        or 0x2B740 <= codepoint <= 0x2B81F
        or 0x2B820 <= codepoint <= 0x2CEAF
        or 0xF900 <= codepoint <= 0xFAFF
        or 0x2F800 <= codepoint <= 0x2FA1F
    )


class TextStreamer:
    """Decode tokens as they come and hand out finished text: `on_text(text, stream_end)`, print by default."""

    def __init__(self, decode: Decode, skip_prompt: bool = False, on_text: Optional[Callable[[str, bool], None]] = None):
        self.decode = decode
        self.skip_prompt = skip_prompt
        self.on_text = on_text
        self.token_cache: list[int] = []
        self.print_len = 0
        self.next_tokens_are_prompt = True

    def put(self, value: np.ndarray) -> None:
        """Take the prompt (first call) or the newest token(s) of a single sequence."""
        value = np.asarray(value)
        if value.ndim > 1 and value.shape[0] > 1:
            raise ValueError("TextStreamer only supports batch size 1")
        if value.ndim > 1:
            value = value[0]
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        self.token_cache.extend(int(t) for t in value.reshape(-1))
        text = self.decode(self.token_cache)
        if text.endswith("\ufffd"):
            printable = ""  # an incomplete multi-byte character: wait for its remaining bytes
        elif text.endswith("\n"):
            printable = text[self.print_len :]
            self.token_cache = []
            self.print_len = 0
        elif text and is_cjk(ord(text[-1])):
            printable = text[self.print_len :]
            self.print_len += len(printable)
        else:
            printable = text[self.print_len : text.rfind(" ") + 1]
            self.print_len += len(printable)
        self.on_finalized_text(printable)

    def end(self) -> None:
        """Flush what is left and signal the end of the stream."""
        if self.token_cache:
            printable = self.decode(self.token_cache)[self.print_len :]
            self.token_cache = []
            self.print_len = 0
        else:
            printable = ""
        self.next_tokens_are_prompt = True
        self.on_finalized_text(printable, stream_end=True)

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        """Hand out a piece of text (print it, as transformers does, unless `on_text` was given)."""
        if self.on_text is not None:
            self.on_text(text, stream_end)
        else:
            print(text, flush=True, end="" if not stream_end else None)


class TextIteratorStreamer(TextStreamer):
    """A streamer to iterate over from another thread: each item is a text piece; iteration ends with generation.

    `timeout` (seconds) bounds each wait for the next piece; past it, iteration raises queue.Empty
    (as transformers' TextIteratorStreamer does), so a consumer notices a generation that died.
    """

    def __init__(self, decode: Decode, skip_prompt: bool = False, timeout: Optional[float] = None):
        super().__init__(decode, skip_prompt)
        self.text_queue: queue.Queue[Optional[str]] = queue.Queue()
        self.stop_signal = None
        self.timeout = timeout

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        self.text_queue.put(text, timeout=self.timeout)
        if stream_end:
            self.text_queue.put(self.stop_signal, timeout=self.timeout)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        value = self.text_queue.get(timeout=self.timeout)
        if value is self.stop_signal:
            raise StopIteration()
        return value
