"""Beam search (and beam sampling): transformers 4.57's vectorized `_beam_search`, step for step, in numpy.

Per prompt it keeps `num_beams` running beams and the `num_beams` best finished hypotheses. Each step takes
the top K = max(2, 1 + number of EOS ids) * num_beams continuations over all beams, scores finished ones
by sum(log p) / generated_length ** length_penalty, and stops by transformers' early-stopping heuristic.
Ties between equal scores are broken by the lower index (torch.topk leaves that order unspecified; on
real-valued scores ties do not occur).
"""

from __future__ import annotations

from typing import Union

import numpy as np

from onnxpipe.cancellation import raise_if_cancelled
from onnxpipe.generation.processors import apply_processors
from onnxpipe.generation.search import SearchInputs, StepRunner
from onnxpipe.generation.stopping import is_done
from onnxpipe.maths import log_softmax

_BIG = np.float32(1.0e9)


def topk(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top k of a 2-D array, sorted descending; equal values ordered by index."""
    n = values.shape[-1]
    if k >= n:
        order = np.argsort(-values, axis=-1, kind="stable")[:, :k]
        return np.take_along_axis(values, order, axis=-1), order
    part = np.argpartition(-values, k - 1, axis=-1)[:, :k]
    kth = np.take_along_axis(values, part, axis=-1).min(axis=-1, keepdims=True)
    rows = []
    for row in range(values.shape[0]):
        candidates = np.flatnonzero(values[row] >= kth[row])  # the top k plus any ties with the k-th
        rows.append(candidates[np.lexsort((candidates, -values[row, candidates]))][:k])
    indices = np.stack(rows)
    return np.take_along_axis(values, indices, axis=-1), indices


def _sample_without_replacement(rng: np.random.Generator, log_probs: np.ndarray, k: int) -> np.ndarray:
    """k indices per row drawn without replacement from softmax(log_probs), in draw order (Gumbel top-k)."""
    gumbel = -np.log(-np.log(rng.random(log_probs.shape)))
    keys = np.where(np.isneginf(log_probs), -np.inf, log_probs.astype(np.float64) + gumbel)
    return topk(keys, k)[1]


def _gather(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """values[b, indices[b, j], ...] for a (B, beams, ...) array and (B, k) indices."""
    return values[np.arange(values.shape[0])[:, None], indices]


def beam_search(
    inputs: SearchInputs,
    num_beams: int,
    num_return_sequences: int,
    length_penalty: float,
    early_stopping: Union[bool, str],
    do_sample: bool,
) -> np.ndarray:
    """Run beam search over rows expanded `num_beams` times per prompt; return (B * num_return_sequences, L).

    Longer than 80 lines on purpose: one loop that follows transformers' `_beam_search` step by step (its
    comments keep transformers' step letters), so the two can be read side by side for parity.
    """
    flat_n, cur_len = inputs.input_ids.shape
    batch = flat_n // num_beams
    max_length = inputs.max_length
    prompt_len = cur_len
    eos = inputs.eos_token_ids
    n_eos = len(eos) if eos is not None else 0
    beams_to_keep = max(2, 1 + n_eos) * num_beams
    top_num_beam_mask = np.arange(beams_to_keep) < num_beams
    # transformers: `pad_token_id or eos_token_id[0] if eos_token_id is not None else -1` (a pad id of 0 -> eos)
    fill = (inputs.pad_token_id or eos[0]) if eos is not None else -1

    running_sequences = np.full((batch, num_beams, max_length), fill, dtype=np.int64)
    running_sequences[:, :, :cur_len] = inputs.input_ids.reshape(batch, num_beams, cur_len)
    sequences = running_sequences.copy()
    running_beam_scores = np.zeros((batch, num_beams), dtype=np.float32)
    running_beam_scores[:, 1:] = -_BIG
    beam_scores = np.full((batch, num_beams), -_BIG, dtype=np.float32)
    is_sent_finished = np.zeros((batch, num_beams), dtype=bool)
    heuristic_unsatisfied = np.ones((batch, 1), dtype=bool)
    hits = np.zeros((batch, num_beams), dtype=bool)
    running_beam_indices = np.full((batch, num_beams, max_length - cur_len), -1, dtype=np.int64)
    beam_indices = running_beam_indices.copy()

    mask = np.ones((flat_n, max_length), dtype=np.int64)
    mask[:, :cur_len] = inputs.attention_mask
    runner = StepRunner(inputs.decoder, inputs.state, inputs.use_cache)
    batch_offset = np.arange(batch)[:, None] * num_beams

    while True:
        raise_if_cancelled()  # onnxpipe.cancellation: checked before and after every decoder step
        flat_running = running_sequences[:, :, :cur_len].reshape(flat_n, cur_len)
        logits = runner.step(flat_running, mask[:, :cur_len], None)
        raise_if_cancelled()
        log_probs = apply_processors(inputs.processors, flat_running, log_softmax(logits))
        vocab = log_probs.shape[-1]
        log_probs = (log_probs.reshape(batch, num_beams, vocab) + running_beam_scores[:, :, None]).reshape(
            batch, num_beams * vocab
        )

        # c. top-K continuations over all beams
        if do_sample:
            topk_indices = _sample_without_replacement(inputs.rng, log_probs, beams_to_keep)
            topk_log_probs = np.take_along_axis(log_probs, topk_indices, axis=1)
        else:
            topk_log_probs, topk_indices = topk(log_probs, beams_to_keep)
        topk_current_beams = topk_indices // vocab
        topk_running_beam_indices = _gather(running_beam_indices, topk_current_beams)
        topk_running_sequences = _gather(running_sequences, topk_current_beams)
        topk_running_sequences[:, :, cur_len] = topk_indices % vocab
        topk_running_beam_indices[:, :, cur_len - prompt_len] = topk_current_beams + batch_offset

        # d. which continuations hit a stopping criterion
        hits = is_done(
            inputs.criteria, topk_running_sequences[:, :, : cur_len + 1].reshape(batch * beams_to_keep, cur_len + 1)
        ).reshape(batch, beams_to_keep)

        # e. the best num_beams unfinished continuations keep running
        topk_running_log_probs = topk_log_probs + hits.astype(np.float32) * -_BIG
        next_topk = topk(topk_running_log_probs, num_beams)[1]
        running_sequences = _gather(topk_running_sequences, next_topk)
        running_beam_scores = np.take_along_axis(topk_running_log_probs, next_topk, axis=1)
        running_beam_indices = _gather(topk_running_beam_indices, next_topk)

        # f. finished continuations among the first num_beams may enter the finished set
        sequences, beam_scores, beam_indices, is_sent_finished = _update_finished(
            sequences, topk_running_sequences, beam_scores, topk_log_probs, beam_indices,
            topk_running_beam_indices, heuristic_unsatisfied, is_sent_finished, hits & top_num_beam_mask[None, :],
            num_beams, np.float32((cur_len + 1 - prompt_len) ** length_penalty), early_stopping,
        )

        # g. reorder the cache for the next step and decide whether to go on
        runner.select(running_beam_indices[:, :, cur_len - prompt_len].reshape(flat_n))
        cur_len += 1
        if early_stopping == "never" and length_penalty > 0.0:
            best_length = max_length - prompt_len
        else:
            best_length = cur_len - prompt_len
        best_running = running_beam_scores[:, :1] / np.float32(best_length**length_penalty)
        worst_finished = np.where(is_sent_finished, beam_scores.min(axis=1, keepdims=True), np.float32(-1.0e9))
        heuristic_unsatisfied = heuristic_unsatisfied & np.any(best_running > worst_finished, axis=-1, keepdims=True)
        improvement_possible = heuristic_unsatisfied.any()
        exists_open_beam = not (is_sent_finished.all() and early_stopping is True)
        valid_continuations = not hits.all()
        if not (improvement_possible and exists_open_beam and valid_continuations):
            break

    sequences = sequences[:, :num_return_sequences].reshape(batch * num_return_sequences, max_length)
    beam_indices = beam_indices[:, :num_return_sequences].reshape(batch * num_return_sequences, -1)
    generated = int((beam_indices + 1 != 0).sum(axis=1).max())
    return sequences[:, : prompt_len + generated]


def _update_finished(
    sequences: np.ndarray,
    topk_running_sequences: np.ndarray,
    beam_scores: np.ndarray,
    topk_log_probs: np.ndarray,
    beam_indices: np.ndarray,
    topk_running_beam_indices: np.ndarray,
    heuristic_unsatisfied: np.ndarray,
    is_sent_finished: np.ndarray,
    just_finished: np.ndarray,
    num_beams: int,
    length_divisor: np.float32,
    early_stopping: Union[bool, str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """transformers' `_update_finished_beams`: merge new finished hypotheses, keep the best num_beams."""
    scores = topk_log_probs / length_divisor
    full = np.all(is_sent_finished, axis=-1, keepdims=True) & (early_stopping is True)
    scores = scores + full.astype(np.float32) * -_BIG
    scores = scores + (~heuristic_unsatisfied).astype(np.float32) * -_BIG
    scores = scores + (~just_finished).astype(np.float32) * -_BIG
    merged_sequences = np.concatenate((sequences, topk_running_sequences), axis=1)
    merged_scores = np.concatenate((beam_scores, scores), axis=1)
    merged_indices = np.concatenate((beam_indices, topk_running_beam_indices), axis=1)
    merged_finished = np.concatenate((is_sent_finished, just_finished), axis=1)
    best = topk(merged_scores, num_beams)[1]
    return (
        _gather(merged_sequences, best),
        np.take_along_axis(merged_scores, best, axis=1),
        _gather(merged_indices, best),
        np.take_along_axis(merged_finished, best, axis=1),
    )
