"""Logits processors in numpy, each equal to its transformers 4.57 namesake, and `build_processors`.

A processor maps (input_ids (B, cur_len) int64, scores (B, V) float32) to new scores and never changes its
inputs in place. `build_processors` assembles them, with the sampling warpers of warpers.py, in
transformers' order (`_get_logits_processor`).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidOptionError
from onnxpipe.generation.config import GenerationConfig
from onnxpipe.generation.warpers import NEG_INF, EpsilonCutoff, EtaCutoff, MinP, Temperature, TopK, TopP, Typical
from onnxpipe.maths import log_softmax

LogitsProcessor = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _vocab_mask(token_ids: Sequence[int], vocab_size: int) -> np.ndarray:
    mask = np.zeros(vocab_size, dtype=bool)
    ids = np.asarray([t for t in token_ids if 0 <= t < vocab_size], dtype=np.int64)
    mask[ids] = True
    return mask


class MinLength:
    """EOS is impossible while the sequence (prompt included) is shorter than `min_length`."""

    def __init__(self, min_length: int, eos_token_ids: Sequence[int]):
        self.min_length = min_length
        self.eos = list(eos_token_ids)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if input_ids.shape[-1] >= self.min_length:
            return scores
        return np.where(_vocab_mask(self.eos, scores.shape[-1]), NEG_INF, scores)


class MinNewTokens:
    """EOS is impossible until `min_new_tokens` tokens follow the first `prompt_length` ones."""

    def __init__(self, prompt_length: int, min_new_tokens: int, eos_token_ids: Sequence[int]):
        self.prompt_length = prompt_length
        self.min_new_tokens = min_new_tokens
        self.eos = list(eos_token_ids)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if input_ids.shape[-1] - self.prompt_length >= self.min_new_tokens:
            return scores
        return np.where(_vocab_mask(self.eos, scores.shape[-1]), NEG_INF, scores)


class RepetitionPenalty:
    """Every token already in the sequence: negative scores times the penalty, positive ones divided by it."""

    def __init__(self, penalty: float):
        self.penalty = np.float32(penalty)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        score = np.take_along_axis(scores, input_ids, axis=1)
        score = np.where(score < 0, score * self.penalty, score / self.penalty)
        out = scores.copy()
        np.put_along_axis(out, input_ids, score, axis=1)
        return out


class NoRepeatNGram:
    """A token that would repeat an n-gram already in the sequence (prompt included) gets -inf."""

    def __init__(self, ngram_size: int):
        self.n = int(ngram_size)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        cur_len = input_ids.shape[-1]
        if cur_len < self.n:  # no complete n-gram yet (transformers: cur_len + 1 < n, or no n-gram found)
            return scores
        windows = np.lib.stride_tricks.sliding_window_view(input_ids, self.n, axis=1)  # (B, L-n+1, n)
        prefix = input_ids[:, cur_len + 1 - self.n :]  # the last n-1 tokens
        matches = np.all(windows[:, :, :-1] == prefix[:, None, :], axis=-1)  # (B, L-n+1)
        rows, cols = np.nonzero(matches)
        if rows.size == 0:
            return scores
        out = scores.copy()
        out[rows, windows[rows, cols, -1]] = NEG_INF
        return out


class SequenceBias:
    """Add a bias to a token when the sequence ends with the tokens before it (bad_words_ids: bias -inf)."""

    def __init__(self, sequence_bias: Sequence[tuple[Sequence[int], float]]):
        self.bias = {tuple(ids): float(b) for ids, b in sequence_bias}
        self.single: Optional[np.ndarray] = None
        self.longer = [(np.asarray(ids[:-1], dtype=np.int64), ids[-1], b) for ids, b in self.bias.items() if len(ids) > 1]

    def _prepare(self, vocab_size: int) -> None:
        invalid = [t for ids in self.bias for t in ids if t >= vocab_size]
        if invalid:
            raise ValueError(
                f"The model vocabulary size is {vocab_size}, but the following tokens were being biased: {invalid}"
            )
        self.single = np.zeros(vocab_size, dtype=np.float32)
        for ids, b in self.bias.items():
            if len(ids) == 1:
                self.single[ids[0]] = b

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.single is None:
            self._prepare(scores.shape[-1])
        bias = np.broadcast_to(self.single, scores.shape).copy()
        for prefix, last, b in self.longer:
            if len(prefix) + 1 > input_ids.shape[1]:
                continue
            matching = np.all(input_ids[:, -len(prefix) :] == prefix, axis=1)
            bias[:, last] += np.where(matching, np.float32(b), np.float32(0.0))
        return scores + bias


def no_bad_words(bad_words_ids: Sequence[Sequence[int]], eos_token_ids: Optional[Sequence[int]]) -> SequenceBias:
    """transformers' NoBadWordsLogitsProcessor: bad sequences get -inf, except a bad word that is just an EOS id."""
    eos = list(eos_token_ids or [])
    kept = [list(seq) for seq in bad_words_ids if all(list(seq) != [e] for e in eos)]
    return SequenceBias([(seq, float("-inf")) for seq in kept]) if kept else _identity


def _identity(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return scores


class ForcedBOS:
    """The first generated token (sequence length 1) is forced to `token_id`."""

    def __init__(self, token_id: int):
        self.token_id = token_id

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if input_ids.shape[-1] != 1:
            return scores
        out = np.full_like(scores, NEG_INF)
        out[:, self.token_id] = 0
        return out


class ForcedEOS:
    """The last token before max_length is forced to one of the EOS ids."""

    def __init__(self, max_length: int, token_ids: Sequence[int]):
        self.max_length = max_length
        self.token_ids = list(token_ids)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if input_ids.shape[-1] != self.max_length - 1:
            return scores
        out = np.full_like(scores, NEG_INF)
        out[:, self.token_ids] = 0
        return out


class InfNanRemove:
    """NaN becomes 0, +/-inf the largest / smallest float32 (remove_invalid_values)."""

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        info = np.finfo(np.float32)
        out = np.where(scores != scores, np.float32(0.0), scores)
        out = np.where(scores == np.inf, info.max, out)
        return np.where(scores == -np.inf, info.min, out).astype(np.float32)


class ExponentialDecayLengthPenalty:
    """From `start` tokens after the prompt, raise the EOS scores by |score| * (factor ** steps - 1)."""

    def __init__(self, start: int, factor: float, eos_token_ids: Sequence[int], prompt_length: int):
        self.regulation_start = start + prompt_length
        self.factor = float(factor)
        self.eos = list(eos_token_ids)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        cur_len = input_ids.shape[-1]
        if cur_len <= self.regulation_start:
            return scores
        penalties = np.zeros_like(scores)
        penalties[:, self.eos] = np.abs(scores[:, self.eos]) * np.float32(pow(self.factor, cur_len - self.regulation_start) - 1)
        with np.errstate(invalid="ignore"):  # -inf + inf on a masked EOS gives NaN, as in torch
            return scores + penalties


class SuppressTokens:
    """These tokens always get -inf."""

    def __init__(self, token_ids: Sequence[int]):
        self.token_ids = list(token_ids)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return np.where(_vocab_mask(self.token_ids, scores.shape[-1]), NEG_INF, scores)


class SuppressTokensAtBegin:
    """These tokens get -inf at the first generated position (`begin_index` = sequence length then)."""

    def __init__(self, token_ids: Sequence[int], begin_index: int):
        self.token_ids = list(token_ids)
        self.begin_index = begin_index

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if input_ids.shape[-1] != self.begin_index:
            return scores
        return np.where(_vocab_mask(self.token_ids, scores.shape[-1]), NEG_INF, scores)


class LogitNormalization:
    """Log-softmax of the final scores (renormalize_logits)."""

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return log_softmax(scores)


def build_processors(
    config: GenerationConfig,
    prompt_length: int,
    max_length: int,
    min_length: int,
    eos_token_ids: Optional[Sequence[int]],
    extra: Sequence[LogitsProcessor] = (),
) -> list[LogitsProcessor]:
    """The processors transformers' `_get_logits_processor` builds for `config`, in its order.

    `prompt_length` is the decoder input length when generation starts, `max_length` / `min_length` the
    resolved totals. `extra` (task-specific processors) run after the built-in ones and before the
    sampling warpers, where transformers puts a `logits_processor=` argument.
    """
    processors: list[LogitsProcessor] = []
    eos = list(eos_token_ids) if eos_token_ids is not None else None
    if config.sequence_bias is not None:
        processors.append(SequenceBias(config.sequence_bias))
    if config.repetition_penalty is not None and config.repetition_penalty != 1.0:
        processors.append(RepetitionPenalty(config.repetition_penalty))
    if config.no_repeat_ngram_size:
        processors.append(NoRepeatNGram(config.no_repeat_ngram_size))
    if config.bad_words_ids is not None:
        processors.append(no_bad_words(config.bad_words_ids, eos))
    if eos is not None and min_length > 0:
        processors.append(MinLength(min_length, eos))
    if eos is not None and config.min_new_tokens:
        processors.append(MinNewTokens(prompt_length, config.min_new_tokens, eos))
    if config.forced_bos_token_id is not None:
        processors.append(ForcedBOS(config.forced_bos_token_id))
    if config.forced_eos_token_id is not None:
        processors.append(ForcedEOS(max_length, config.forced_eos_token_id))
    if config.remove_invalid_values:
        processors.append(InfNanRemove())
    if config.exponential_decay_length_penalty is not None:
        if eos is None:
            raise InvalidOptionError("exponential_decay_length_penalty needs an eos_token_id to favour.")
        start, factor = config.exponential_decay_length_penalty
        processors.append(ExponentialDecayLengthPenalty(start, factor, eos, prompt_length))
    if config.suppress_tokens is not None:
        processors.append(SuppressTokens(config.suppress_tokens))
    if config.begin_suppress_tokens is not None:
        begin = prompt_length if (prompt_length > 1 or config.forced_bos_token_id is None) else prompt_length + 1
        processors.append(SuppressTokensAtBegin(config.begin_suppress_tokens, begin))
    processors.extend(extra)
    if config.do_sample:
        keep = (len(eos) + 1 if eos is not None else 2) if config.num_beams > 1 else 1
        if config.temperature is not None and config.temperature != 1.0:
            processors.append(Temperature(config.temperature))
        if config.top_k is not None and config.top_k != 0:
            processors.append(TopK(config.top_k, keep))
        if config.top_p is not None and config.top_p < 1.0:
            processors.append(TopP(config.top_p, keep))
        if config.min_p is not None:
            processors.append(MinP(config.min_p, keep))
        if config.typical_p is not None and config.typical_p < 1.0:
            processors.append(Typical(config.typical_p, keep))
        if config.epsilon_cutoff is not None and 0.0 < config.epsilon_cutoff < 1.0:
            processors.append(EpsilonCutoff(config.epsilon_cutoff, keep))
        if config.eta_cutoff is not None and 0.0 < config.eta_cutoff < 1.0:
            processors.append(EtaCutoff(config.eta_cutoff, keep))
    if config.renormalize_logits:
        processors.append(LogitNormalization())
    return processors


def apply_processors(processors: Sequence[LogitsProcessor], input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Run `processors` in order."""
    for processor in processors:
        scores = processor(input_ids, scores)
    return scores
