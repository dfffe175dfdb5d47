"""Greedy search and multinomial sampling: transformers 4.57's `_sample` loop over a Decoder, in numpy.

Rows that finish (EOS, stop string) get `pad_token_id` appended, as in transformers, and stop being fed to
the decoder: their rows are dropped from the decoder state with `select`, so a batch costs only what its
running rows cost. Sampling draws from a numpy Generator seeded with `seed`: reproducible run to run, but
not the same draws as torch's RNG (which cannot be matched without torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from onnxpipe.cancellation import raise_if_cancelled
from onnxpipe.errors import InvalidOptionError
from onnxpipe.generation.decoder import Decoder, State
from onnxpipe.generation.processors import LogitsProcessor, apply_processors
from onnxpipe.generation.stopping import Criterion, is_done
from onnxpipe.maths import softmax


@dataclass
class SearchInputs:
    """What every search loop starts from (built by generate())."""

    decoder: Decoder
    state: State  # prepared and expanded, nothing fed yet
    input_ids: np.ndarray  # (N, prompt_length) decoder-side ids, already expanded
    attention_mask: np.ndarray  # (N, prompt_length) decoder-side mask
    max_length: int
    processors: Sequence[LogitsProcessor]
    criteria: Sequence[Criterion]
    eos_token_ids: Optional[tuple[int, ...]]
    pad_token_id: Optional[int]
    use_cache: bool
    rng: Optional[np.random.Generator]
    streamer: Any = None


class StepRunner:
    """Feeds a decoder: the new tokens on a cached state, or the whole sequence on a fresh state per step."""

    def __init__(self, decoder: Decoder, state: State, use_cache: bool):
        self.decoder = decoder
        self.use_cache = use_cache
        self.fresh = None if use_cache else state  # prepared state, re-selected at every step without cache
        self.state = state
        self.started = False

    def step(self, sequences: np.ndarray, attention_mask: np.ndarray, rows: Optional[np.ndarray]) -> np.ndarray:
        """Logits (n, V) float32 after `sequences` (n, cur_len); `rows` picks the fresh state's rows (no cache)."""
        mask = np.ascontiguousarray(attention_mask, dtype=np.int64)
        if not self.use_cache:
            picked = np.arange(sequences.shape[0]) if rows is None else rows
            state = self.decoder.select(self.fresh, np.asarray(picked, dtype=np.int64))
            logits, _ = self.decoder.step(state, np.ascontiguousarray(sequences, dtype=np.int64), mask)
        else:
            tokens = sequences if not self.started else sequences[:, -1:]
            logits, self.state = self.decoder.step(self.state, np.ascontiguousarray(tokens, dtype=np.int64), mask)
        self.started = True
        return np.asarray(logits, dtype=np.float32)

    def select(self, rows: np.ndarray) -> None:
        """Keep (and reorder) the cached state's rows; without cache nothing is cached."""
        if self.use_cache and self.started:
            self.state = self.decoder.select(self.state, np.asarray(rows, dtype=np.int64))


def sample_next(rng: np.random.Generator, scores: np.ndarray) -> np.ndarray:
    """One token per row drawn from softmax(scores): inverse CDF over the tokens of non-zero probability."""
    probs = softmax(scores)
    draws = rng.random(scores.shape[0])
    tokens = np.empty(scores.shape[0], dtype=np.int64)
    for row in range(scores.shape[0]):  # rows, not the vocabulary
        live = np.flatnonzero(probs[row])
        cdf = np.cumsum(probs[row, live], dtype=np.float64)
        if live.size == 0 or not np.isfinite(cdf[-1]) or cdf[-1] <= 0:
            raise InvalidOptionError(
                f"No token can be sampled for row {row}: the logits processors left every token at probability 0 "
                "(or the model returned NaN). Loosen top_k / top_p / min_p / bad_words_ids / suppress_tokens."
            )
        at = int(np.searchsorted(cdf, draws[row] * cdf[-1], side="right"))
        tokens[row] = live[min(at, live.size - 1)]
    return tokens


def greedy_or_sample(inputs: SearchInputs, do_sample: bool) -> np.ndarray:
    """Run greedy search (argmax) or multinomial sampling; return (N, length) int64 sequences."""
    n, cur = inputs.input_ids.shape
    sequences = np.empty((n, inputs.max_length), dtype=np.int64)
    sequences[:, :cur] = inputs.input_ids
    mask = np.ones((n, inputs.max_length), dtype=np.int64)
    mask[:, :cur] = inputs.attention_mask
    runner = StepRunner(inputs.decoder, inputs.state, inputs.use_cache)
    # transformers pads finished rows only when an EOS criterion exists; without one, rows run to the end
    can_drop = inputs.eos_token_ids is not None
    active = np.arange(n)
    unfinished = np.ones(n, dtype=bool)
    while True:
        raise_if_cancelled()  # onnxpipe.cancellation: a deadline or a client that left stops the loop here
        all_rows = active.size == n
        logits = runner.step(
            sequences[:, :cur] if all_rows else sequences[active, :cur],
            mask[:, :cur] if all_rows else mask[active, :cur],
            None if all_rows else active,
        )
        raise_if_cancelled()
        seen = sequences[:, :cur] if all_rows else sequences[active, :cur]
        scores = apply_processors(inputs.processors, seen, logits)
        next_tokens = sample_next(inputs.rng, scores) if do_sample else np.argmax(scores, axis=-1)
        if not all_rows:
            sequences[:, cur] = inputs.pad_token_id
        sequences[active, cur] = next_tokens
        cur += 1
        if inputs.streamer is not None:
            inputs.streamer.put(sequences[:, cur - 1].copy())
        done = is_done(inputs.criteria, sequences[active, :cur])
        if cur >= inputs.max_length:
            break
        if can_drop:
            if done.all():
                break
            if done.any():
                keep = np.flatnonzero(~done)
                active = active[keep]
                runner.select(keep)
        else:
            # without an EOS criterion transformers neither pads nor stops finished rows: it runs every row
            # until all are done (stop strings / max_time)
            unfinished &= ~done
            if not unfinished.any():
                break
    return sequences[:, :cur]
