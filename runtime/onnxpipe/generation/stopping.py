"""Stopping criteria: which rows are done after the latest token (transformers' StoppingCriteriaList).

Each criterion maps input_ids (B, cur_len) to a bool array (B,). Max length, EOS ids, stop strings and
max_time are implemented; `build_stopping` puts them in transformers' order.
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidOptionError
from onnxpipe.generation.config import GenerationConfig

Criterion = Callable[[np.ndarray], np.ndarray]


class MaxLength:
    """Every row is done once the sequence reaches `max_length` tokens."""

    def __init__(self, max_length: int):
        self.max_length = max_length

    def __call__(self, input_ids: np.ndarray) -> np.ndarray:
        return np.full(input_ids.shape[0], input_ids.shape[1] >= self.max_length, dtype=bool)


class MaxTime:
    """Every row is done once `max_time` seconds have passed since generation started."""

    def __init__(self, max_time: float):
        self.max_time = max_time
        self.start = time.time()

    def __call__(self, input_ids: np.ndarray) -> np.ndarray:
        return np.full(input_ids.shape[0], time.time() - self.start > self.max_time, dtype=bool)


class EosToken:
    """A row is done when its last token is one of the EOS ids."""

    def __init__(self, eos_token_ids: Sequence[int]):
        self.eos = np.asarray(list(eos_token_ids), dtype=np.int64)

    def __call__(self, input_ids: np.ndarray) -> np.ndarray:
        return np.isin(input_ids[:, -1], self.eos)


class StopStrings:
    """A row is done when a stop string appears in its decoded text and overlaps the last token's text.

    transformers matches token strings from the vocabulary; onnxpipe decodes the tail of each row with
    `decode` and asks the same question: does an occurrence of the stop string end after the text of all
    tokens but the last? (So ["st", "op"] and ["las", "topper"] stop on "stop"; ["stop", "at"] does not.)
    """

    def __init__(self, stop_strings: Sequence[str], decode: Callable[[Sequence[int]], str]):
        self.stop_strings = list(stop_strings)
        self.decode = decode
        # enough trailing tokens to hold the longest stop string even if tokens were one character each,
        # plus a few for tokens that decode to nothing on their own (byte pieces, special tokens)
        self.window = max(len(s) for s in self.stop_strings) + 4

    def __call__(self, input_ids: np.ndarray) -> np.ndarray:
        done = np.zeros(input_ids.shape[0], dtype=bool)
        for row, ids in enumerate(input_ids[:, -self.window :].tolist()):
            text = self.decode(ids)
            before = len(self.decode(ids[:-1]))
            for stop in self.stop_strings:
                start = text.find(stop, max(0, before - len(stop) + 1))
                if start != -1:
                    done[row] = True
                    break
        return done


def build_stopping(
    config: GenerationConfig,
    max_length: int,
    eos_token_ids: Optional[Sequence[int]],
    decode: Optional[Callable[[Sequence[int]], str]],
) -> list[Criterion]:
    """The criteria transformers' `_get_stopping_criteria` builds for `config`."""
    criteria: list[Criterion] = [MaxLength(max_length)]
    if config.max_time is not None:
        criteria.append(MaxTime(config.max_time))
    if config.stop_strings is not None:
        if decode is None:
            raise InvalidOptionError(
                "stop_strings needs the tokenizer to decode generated tokens; this pipeline did not provide one."
            )
        criteria.append(StopStrings(config.stop_strings, decode))
    if eos_token_ids is not None:
        criteria.append(EosToken(eos_token_ids))
    return criteria


def is_done(criteria: Sequence[Criterion], input_ids: np.ndarray) -> np.ndarray:
    """Rows any criterion says are done."""
    done = np.zeros(input_ids.shape[0], dtype=bool)
    for criterion in criteria:
        done |= criterion(input_ids)
    return done
