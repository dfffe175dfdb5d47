"""Whisper's timestamp rules: the logits processor that makes timestamps legal, and cutting a decoded window into
segments, both as transformers 4.57 does (WhisperTimeStampLogitsProcessor, WhisperGenerationMixin._retrieve_segment).

Timestamp tokens follow <|notimestamps|>: token `timestamp_begin + i` stands for i * 0.02 s inside a 30 s window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from onnxpipe.generation.warpers import NEG_INF
from onnxpipe.maths import log_softmax, logsumexp

TIME_PRECISION = 0.02  # seconds per timestamp token (generate's time_precision)
TIME_PRECISION_FEATURES = 0.01  # seconds per mel frame


class TimestampRules:
    """WhisperTimeStampLogitsProcessor: timestamps come in pairs (except before EOS), never decrease, the first
    generated token is a timestamp at most `max_initial_timestamp_index` steps in, and a timestamp is forced when
    the timestamps together are more likely than any single text token."""

    def __init__(self, no_timestamps_token_id: int, eos_token_id: int, begin_index: int,
                 max_initial_timestamp_index: Optional[int]):
        self.no_timestamps_token_id = no_timestamps_token_id
        self.timestamp_begin = no_timestamps_token_id + 1
        self.eos_token_id = eos_token_id
        self.begin_index = begin_index
        self.max_initial_timestamp_index = max_initial_timestamp_index

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        begin = self.timestamp_begin
        out = scores.copy()
        out[:, self.no_timestamps_token_id] = NEG_INF
        for k in range(input_ids.shape[0]):
            seq = input_ids[k, self.begin_index :]
            last_was_timestamp = len(seq) >= 1 and seq[-1] >= begin
            penultimate_was_timestamp = len(seq) < 2 or seq[-2] >= begin
            if last_was_timestamp:
                if penultimate_was_timestamp:  # a pair just closed: text (or EOS) next
                    out[k, begin:] = NEG_INF
                else:  # an opened pair: a timestamp or EOS next
                    out[k, : self.eos_token_id] = NEG_INF
            stamps = seq[seq >= begin]
            if stamps.size:
                last = stamps[-1] if (last_was_timestamp and not penultimate_was_timestamp) else stamps[-1] + 1
                out[k, begin:last] = NEG_INF
        if input_ids.shape[1] == self.begin_index:
            out[:, :begin] = NEG_INF
            if self.max_initial_timestamp_index is not None:
                out[:, begin + self.max_initial_timestamp_index + 1 :] = NEG_INF
        logprobs = log_softmax(out.astype(np.float32))
        for k in range(input_ids.shape[0]):
            stamp_logprob = logsumexp(logprobs[k, begin:])
            if stamp_logprob > logprobs[k, :begin].max():
                out[k, :begin] = NEG_INF
        return out


@dataclass(frozen=True)
class Segment:
    """Tokens of one window between timestamps, with their start and end in seconds (long-form bookkeeping)."""

    start: float
    end: float
    tokens: np.ndarray
    times: Optional[np.ndarray] = None  # each token's time in seconds (word timestamps), offset like start


def strip_generated(sequence: np.ndarray, pad_token_id: Optional[int], eos_token_id: Optional[int]) -> np.ndarray:
    """A window's generated tokens without padding and the final EOS (generate_with_fallback): when the row ends
    with padding, as many tokens as the row holds pad ids are cut from its end (one fewer when pad is EOS)."""
    if pad_token_id is not None and len(sequence) and sequence[-1] == pad_token_id:
        paddings = int((sequence == pad_token_id).sum())
        if pad_token_id == eos_token_id:
            paddings -= 1
        if paddings:
            sequence = sequence[:-paddings]
    if len(sequence) and eos_token_id is not None and sequence[-1] == eos_token_id:
        sequence = sequence[:-1]
    return sequence


def retrieve_segments(sequence: np.ndarray, time_offset: float, timestamp_begin: int, window_frames: int,
                      input_stride: int, times: Optional[np.ndarray] = None) -> tuple[list[Segment], int]:
    """Cut a window's tokens at consecutive timestamp pairs; return the segments and how many mel frames to seek.

    A window ending in one timestamp (or none) is consumed whole; otherwise decoding resumes at the last closed
    pair, and the tokens after it are dropped (they are decoded again in the next window). `times` (one per
    generated token, window-relative) are cut the same way and offset by `time_offset` (float32, as transformers).
    """

    def cut_times(start: int, stop: int) -> Optional[np.ndarray]:
        return None if times is None else (times[start:stop] + np.float32(time_offset)).astype(np.float32)

    is_stamp = sequence >= timestamp_begin
    single_ending = is_stamp[-2:].tolist() == [False, True]
    cuts = (np.nonzero(is_stamp[:-1] & is_stamp[1:])[0] + 1).tolist()
    if cuts:
        if single_ending:
            cuts.append(len(sequence))
        else:
            cuts[-1] += 1
        segments, last = [], 0
        for i, cut in enumerate(cuts):
            piece = sequence[last:cut]
            end_index = -1 if (i < len(cuts) - 1 or single_ending) else -2
            segments.append(Segment(
                time_offset + float(piece[0] - timestamp_begin) * TIME_PRECISION,
                time_offset + float(piece[end_index] - timestamp_begin) * TIME_PRECISION,
                piece,
                cut_times(last, cut),
            ))
            last = cut
        if single_ending:
            return segments, window_frames
        return segments, int(sequence[last - 2] - timestamp_begin) * input_stride
    stamps = sequence[is_stamp]
    last_position = float(int(window_frames * TIME_PRECISION_FEATURES / TIME_PRECISION))
    if stamps.size and stamps[-1] != timestamp_begin:
        last_position = float(stamps[-1] - timestamp_begin)
    return [Segment(time_offset, time_offset + last_position * TIME_PRECISION, sequence, cut_times(0, len(sequence)))], window_frames
