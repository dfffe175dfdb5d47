"""Teacher forcing: a decoder reads a fixed token sequence, and each position keeps the negative log-likelihood of the
token that actually follows and the decoder's own top choice there.

This is what generation quality is measured with (quality.py): export validation and `onnxpipe check` compare these
per-position scores with torch fp32's. Like the rest of generation/, it knows no task or model family: it sees a
decoder graph that maps (input ids, past) to (logits, present), keyed on the graph's names (kv_cache.py), and an
encoder-decoder's encoder output comes in as extra feeds. Long sequences go in chunks that carry the cache, so only
one chunk's logits (chunk x vocabulary floats) are held at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np

from onnxpipe.errors import InvalidInputError
from onnxpipe.generation.io_binding import LOGITS
from onnxpipe.generation.kv_cache import CacheLayout, is_cross_attention
from onnxpipe.maths import log_softmax

DEFAULT_CHUNK = 256  # positions per decoder run: 256 x a 49k vocabulary is 50 MB of float32 logits


@dataclass(frozen=True)
class NextTokenScores:
    """Per position t of a sequence (all but the last): -log p(ids[t+1] | ids[..t]) and the argmax at t."""

    nll: np.ndarray  # (T-1,) float64
    top1: np.ndarray  # (T-1,) int64


def next_token_scores(logits: np.ndarray, following: np.ndarray) -> NextTokenScores:
    """Scores of logits (t, V) against the tokens that follow each position (t,): log-softmax in float64."""
    values = np.asarray(logits, dtype=np.float64)
    following = np.asarray(following, dtype=np.int64)
    if values.ndim != 2 or following.shape != (values.shape[0],):
        raise InvalidInputError(
            f"next_token_scores needs logits (positions, vocabulary) and one following token per position; got "
            f"logits {values.shape} and tokens {following.shape}."
        )
    nll = -log_softmax(values)[np.arange(len(following)), following]
    return NextTokenScores(nll, values.argmax(axis=-1).astype(np.int64))


def teacher_forced(
    session: Any,
    layout: CacheLayout,
    input_ids: np.ndarray,
    extra: Optional[Mapping[str, np.ndarray]] = None,
    chunk: int = DEFAULT_CHUNK,
) -> NextTokenScores:
    """Run the decoder `session` (an OnnxSession) over `input_ids` (1, T), `chunk` positions per run with the cache
    carried between runs (the whole sequence at once for graphs without a cache); `extra` holds feeds such as
    encoder_hidden_states. Returns the scores of positions 0..T-2 against the tokens that follow them."""
    ids = np.asarray(input_ids, dtype=np.int64)
    if ids.ndim != 2 or ids.shape[0] != 1 or ids.shape[1] < 2:
        raise InvalidInputError(f"teacher_forced needs input_ids of shape (1, T) with T >= 2; got {ids.shape}.")
    if chunk < 1:
        raise InvalidInputError(f"chunk must be a positive number of positions; got {chunk}.")
    total = ids.shape[1]
    step = chunk if layout.uses_cache else total
    past: Optional[dict[str, Any]] = None
    nll, top1 = [], []
    for start in range(0, total - 1, step):  # the last token is only ever a target
        end = min(start + step, total - 1)
        feeds = _feeds(session.inputs, ids[:, start:end], start, extra or {})
        if layout.uses_cache:
            feeds.update(layout.empty(1) if past is None else past)
        wanted = [LOGITS, *(layout.present_of[name] for name in layout.past_names)] if layout.uses_cache else [LOGITS]
        outputs = session.run(feeds, wanted)
        scores = next_token_scores(outputs[LOGITS][0], ids[0, start + 1:end + 1])
        nll.append(scores.nll)
        top1.append(scores.top1)
        if layout.uses_cache:
            # the cross-attention cache is made by the first run only (later runs return placeholders): keep it
            past = {
                name: past[name] if past is not None and is_cross_attention(name) else outputs[layout.present_of[name]]
                for name in layout.past_names
            }
    return NextTokenScores(np.concatenate(nll), np.concatenate(top1))


def _feeds(inputs: Mapping[str, str], tokens: np.ndarray, seen: int, extra: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The feeds of one run: the tokens after `seen` positions, with every positional input the graph declares."""
    end = seen + tokens.shape[1]
    feeds: dict[str, Any] = {"input_ids": tokens}
    if "attention_mask" in inputs:
        feeds["attention_mask"] = np.ones((1, end), dtype=np.int64)
    if "position_ids" in inputs:
        feeds["position_ids"] = np.arange(seen, end, dtype=np.int64)[None]
    if "cache_position" in inputs:
        feeds["cache_position"] = np.arange(seen, end, dtype=np.int64)
    if "use_cache_branch" in inputs:
        feeds["use_cache_branch"] = np.array([seen > 0])
    feeds.update({name: value for name, value in extra.items() if name in inputs})
    return feeds
