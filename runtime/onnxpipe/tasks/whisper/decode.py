"""Whisper token ids to the pipeline's text and chunks, as transformers 4.57's `_decode_asr` does it.

Each window's tokens are walked once: language tokens set the chunk language, other special tokens are skipped,
text tokens accumulate, and timestamp pairs close chunks. Windows of chunked audio (`chunk_length_s`) carry
(window, left stride, right stride) in seconds; timestamps inside strides are held back, and the text of
overlapping windows is merged by `longest_common_sequence`. With `return_timestamps="word"` each window also
carries its tokens' times (alignment.py) and the chunks are words (words.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from onnxpipe.tasks.whisper.languages import LANGUAGES
from onnxpipe.tasks.whisper.words import word_chunks


@dataclass(frozen=True)
class WhisperVocabulary:
    """What decoding needs from the tokenizer: special ids, the timestamp start, and ids -> text."""

    special_ids: frozenset
    timestamp_begin: int
    prompt_token_id: Optional[int]  # <|startofprev|>
    decoder_start_token_id: Optional[int]  # <|startoftranscript|>
    decode: Callable[[Sequence[int]], str]  # tokenizer.decode(ids) with special tokens kept
    token_text: Callable[[int], Optional[str]]  # the token string of an id
    eos_token_id: int = 0  # <|endoftext|>: word splitting treats ids from it on as special


@dataclass(frozen=True)
class Window:
    """One decoded window: its tokens and, for chunked audio, (window, left stride, right stride) in seconds."""

    tokens: list[int]
    stride: Optional[tuple[float, float, float]] = None
    token_times: Optional[Sequence[float]] = None  # seconds per token, for return_timestamps="word"


def strip_prompt(ids: list[int], vocab: WhisperVocabulary) -> list[int]:
    """Drop a <|startofprev|> prompt: everything before <|startoftranscript|> (all of it when there is none)."""
    if ids and ids[0] == vocab.prompt_token_id:
        return ids[ids.index(vocab.decoder_start_token_id):] if vocab.decoder_start_token_id in ids else []
    return ids


def decode_asr(windows: Sequence[Window], vocab: WhisperVocabulary, return_timestamps: Any, return_language: Any,
               time_precision: float, segment_size: int = 1500) -> tuple[str, dict[str, Any]]:
    """(text, {"chunks": [...]} or {}) of the windows of one input, as the pipeline returns them.

    Longer than 80 lines on purpose: a port of transformers' `_decode_asr` in its order (one pass over the
    tokens with the same state variables), kept whole so it can be checked against it.
    """
    last_language = None

    def new_chunk() -> dict[str, Any]:
        return {"language": last_language, "timestamp": [None, None], "text": ""}

    words = return_timestamps == "word"

    def close(chunk: dict[str, Any], previous: list[list[int]], previous_times: list[list[tuple[float, float]]]) -> None:
        tokens, times = timed_common_sequence(previous, previous_times if words else None)
        chunk["text"] = vocab.decode(tokens)
        if words:
            chunk["words"] = word_chunks(vocab.decode, tokens, times, vocab.eos_token_id, last_language, return_language)
        chunks.append(chunk)

    chunks: list[dict[str, Any]] = []
    chunk = new_chunk()
    time_offset = 0.0
    begin = vocab.timestamp_begin
    previous: list[list[int]] = []
    previous_times: list[list[tuple[float, float]]] = []
    skip = False
    for window in windows:
        ids = strip_prompt(list(window.tokens), vocab)
        token_times = list(window.token_times or []) if words else []
        last_timestamp = None
        first_timestamp = begin
        cur_max = prev_segments_len = penultimate = 0.0
        if window.stride is not None:
            chunk_len, stride_left, stride_right = window.stride
            time_offset -= stride_left
            right_stride_start = chunk_len - stride_right
            if stride_left:
                first_timestamp = stride_left / time_precision + begin
            if stride_right:
                for token in reversed(ids):
                    if token >= begin:
                        if last_timestamp is not None and (token - begin) * time_precision < right_stride_start:
                            break
                        last_timestamp = token
        current: list[int] = []
        current_times: list[tuple[float, float]] = []
        for i, token in enumerate(ids):
            if token in vocab.special_ids:
                text = (vocab.token_text(token) or "")[2:-2]
                language = LANGUAGES.get(text)
                if language is not None:
                    if last_language and language != last_language and not return_timestamps:
                        previous.append(current)
                        close(chunk, previous, previous_times)
                        previous, current = [], []
                        chunk = new_chunk()
                    chunk["language"] = language
                    last_language = language
            elif token >= begin:
                timestamp = float((token - begin) * time_precision)
                if timestamp < cur_max:  # the next segment of a long-form window has started
                    single_ending = i >= 2 and not (ids[i - 1] >= begin and ids[i - 2] >= begin)
                    if single_ending:
                        prev_segments_len += time_precision * segment_size
                    else:
                        cur_max = penultimate
                        prev_segments_len += penultimate
                penultimate = cur_max
                cur_max = timestamp
                time = round((token - begin) * time_precision + time_offset + prev_segments_len, 2)
                if last_timestamp and token >= last_timestamp:
                    skip = True  # inside the right stride: resolved by the next window
                elif skip or (previous and token < first_timestamp):
                    skip = False
                elif chunk["timestamp"][0] is None:
                    chunk["timestamp"][0] = time
                elif time != chunk["timestamp"][0]:  # equal: a duplicated start, not an end
                    chunk["timestamp"][1] = time
                    previous.append(current)
                    if words:
                        previous_times.append(current_times)
                    close(chunk, previous, previous_times)
                    previous, current, previous_times, current_times = [], [], [], []
                    chunk = new_chunk()
            else:
                current.append(token)
                if words:  # a token starts where the one before it ends
                    start = round((token_times[i - 1] if i > 0 else 0.0) + time_offset, 2)
                    current_times.append((start, round(token_times[i] + time_offset, 2)))
        if window.stride is not None:
            time_offset += chunk_len - stride_right
        if current:
            previous.append(current)
            if words:
                previous_times.append(current_times)
        elif not any(p for p in previous):
            chunk = new_chunk()
            previous, current, previous_times, current_times = [], [], [], []
    if previous:
        close(chunk, previous, previous_times)
    full_text = "".join(c["text"] for c in chunks)
    if not (return_timestamps or return_language):
        return full_text, {}
    for c in chunks:
        if return_timestamps:
            c["timestamp"] = tuple(c["timestamp"])
        else:
            c.pop("timestamp")
        if not return_language:
            c.pop("language")
    if words:
        return full_text, {"chunks": [word for c in chunks for word in c["words"]]}
    return full_text, {"chunks": chunks}


def longest_common_sequence(sequences: Sequence[Sequence[int]]) -> list[int]:
    """Join token lists of overlapping windows: each pair is aligned where the most tokens agree (ties go to
    longer overlaps), and the overlap is split in its middle, the left half from the left window."""
    return timed_common_sequence(sequences, None)[0]


def timed_common_sequence(sequences: Sequence[Sequence[int]], times: Optional[Sequence[Sequence[Any]]]
                          ) -> tuple[list[int], list[Any]]:
    """longest_common_sequence with each token's (start, end) times (for word timestamps): a token agrees only when
    its time is not before the left one's, and the times are cut the same way (without times, the second list
    returned is empty)."""
    left = list(sequences[0])
    left_times = list(times[0]) if times else []
    total: list[int] = []
    total_times: list[Any] = []
    for index, right in enumerate(sequences[1:], 1):
        right = list(right)
        left_length, right_length = len(left), len(right)
        best = 0.0
        best_indices = (left_length, left_length, 0, 0)
        for i in range(1, left_length + right_length):
            eps = i / 10000.0
            left_start, left_stop = max(0, left_length - i), min(left_length, left_length + right_length - i)
            right_start, right_stop = max(0, i - left_length), min(right_length, i)
            if times:
                matches = sum(1 for k, token in enumerate(left[left_start:left_stop])
                              if token == right[right_start + k] and left_times[left_start + k] <= times[index][right_start + k])
            else:
                matches = int(np.sum(np.array(left[left_start:left_stop]) == np.array(right[right_start:right_stop])))
            matching = matches / i + eps
            if matches > 1 and matching > best:
                best = matching
                best_indices = (left_start, left_stop, right_start, right_stop)
        left_start, left_stop, right_start, right_stop = best_indices
        total.extend(left[: (left_stop + left_start) // 2])
        left = right[(right_stop + right_start) // 2 :]
        if times:
            total_times.extend(left_times[: (left_stop + left_start) // 2])
            left_times = list(times[index])[(right_stop + right_start) // 2 :]
    total.extend(left)
    total_times.extend(left_times)
    return total, total_times
