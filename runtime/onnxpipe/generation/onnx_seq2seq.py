"""The Decoder protocol over an encoder-decoder ONNX pair (T5, BART, Marian ... as optimum exports them).

`prepare` runs the encoder once; `step` runs the decoder. The preferred decoder is optimum's merged graph
(`decoder_model_merged.onnx`): its `use_cache_branch` input picks the first-step branch (empty cache,
computes the cross-attention key/values from the encoder output) or the cached branch (one token per row).
The cross-attention cache of the first step is kept for every later step: the cached branch returns only
dummies for it. A pair `decoder_model.onnx` + `decoder_with_past_model.onnx` works the same way
(`first_session`), and a decoder without cache inputs gets the whole decoded sequence every step.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Optional

import numpy as np

from onnxpipe.generation.io_binding import ENCODER_HIDDEN, LOGITS, BoundRunner, plan_step
from onnxpipe.generation.kv_cache import position_ids
from onnxpipe.generation.onnx_decoder import (
    CacheState,
    check_mask,
    device_of,
    graph_layout,
    grown_history,
    last_logits,
    take_rows,
)

ENCODER_MASK = "encoder_attention_mask"


class OnnxSeq2Seq:
    """An ONNX encoder plus decoder seen one step at a time (implements generation.decoder.Decoder)."""

    is_encoder_decoder = True

    def __init__(
        self,
        encoder: Any,
        decoder: Any,
        config: Mapping[str, Any],
        *,
        first_session: Optional[Any] = None,
        use_cache: bool = True,
        io_binding: Optional[bool] = None,
    ):
        self.encoder = encoder
        self.decoder = decoder
        self.first_session = first_session
        self.layout = graph_layout(decoder, config)
        self.use_cache = use_cache and self.layout.uses_cache
        self.hidden_name = encoder.output_named("last_hidden_state")
        kind, index = device_of(decoder)
        bind = kind == "cuda" if io_binding is None else io_binding
        self.runner = BoundRunner(decoder, kind, index) if bind and self.use_cache and first_session is None else None

    def prepare(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> CacheState:
        """Run the encoder on the prompts (B, S) and keep its output and mask for every decoder step."""
        input_ids = np.asarray(input_ids, dtype=np.int64)
        attention_mask = np.asarray(attention_mask, dtype=np.int64)
        hidden = self.encoder.run({"input_ids": input_ids, "attention_mask": attention_mask}, [self.hidden_name])[self.hidden_name]
        if self.runner is not None:
            hidden = self.runner.to_device(hidden)
        return CacheState(batch=input_ids.shape[0], encoder={ENCODER_HIDDEN: hidden, ENCODER_MASK: attention_mask})

    def step(self, state: CacheState, tokens: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, CacheState]:
        """Feed decoder `tokens` (B, t) after what `state` has seen; `attention_mask` covers seen + t positions."""
        tokens = np.asarray(tokens, dtype=np.int64)
        attention_mask = np.asarray(attention_mask, dtype=np.int64)
        if not self.use_cache:
            history = grown_history(state, tokens, attention_mask)
            feeds = {**self._feeds(history, attention_mask, 0, state), **self.layout.empty(history.shape[0])}
            logits = self.decoder.run(feeds, [LOGITS])[LOGITS]
            return last_logits(logits), replace(state, history=history, seen=history.shape[1])
        check_mask(attention_mask, state.seen + tokens.shape[1])
        first = state.past is None
        feeds = self._feeds(tokens, attention_mask, state.seen, state)
        kept = self.layout.past_names if first else self.layout.self_attention
        if self.runner is not None:
            device = {ENCODER_HIDDEN: feeds.pop(ENCODER_HIDDEN), **({} if first else state.past)}
            host_feeds = {**feeds, **(self.layout.empty(tokens.shape[0]) if first else {})}
            plan = plan_step(self.decoder.inputs, self.layout, first_step=first, resident=[ENCODER_HIDDEN])
            host, presents = self.runner.run(plan, host_feeds, device)
            logits = host[LOGITS]
        else:
            session = self.first_session if first and self.first_session is not None else self.decoder
            past = self.layout.empty(tokens.shape[0]) if first else state.past
            wanted = [LOGITS, *(self.layout.present_of[name] for name in kept)]
            presents = session.run({**feeds, **past}, wanted)
            logits = presents[LOGITS]
        new_past = dict(state.past or {})
        new_past.update({name: presents[self.layout.present_of[name]] for name in kept})
        return last_logits(logits), replace(state, past=new_past, seen=state.seen + tokens.shape[1])

    def select(self, state: CacheState, rows: np.ndarray) -> CacheState:
        """The state with batch rows taken in the order of `rows`, encoder output included.

        Beam search reorders beams within their prompt at every step: the encoder output and the cross-attention
        cache of those rows are copies of one another, so they are left in place (a t5-small step spent a third of
        its time copying them)."""
        rows = np.asarray(rows, dtype=np.int64)
        take = lambda value: take_rows(value, rows, self.runner)  # noqa: E731
        origin = np.arange(state.batch) if state.origin is None else state.origin
        new_origin = origin[rows]
        unchanged = len(rows) == len(origin) and bool(np.array_equal(new_origin, origin))

        def past_row(name: str, value: Any) -> Any:
            return value if unchanged and ".encoder." in name else take(value)

        return replace(
            state,
            past=None if state.past is None else {k: past_row(k, v) for k, v in state.past.items()},
            history=None if state.history is None else np.take(state.history, rows, axis=0),
            encoder=state.encoder if state.encoder is None or unchanged else {k: take(v) for k, v in state.encoder.items()},
            batch=len(rows),
            origin=new_origin,
        )

    def _feeds(self, tokens: np.ndarray, attention_mask: np.ndarray, seen: int, state: CacheState) -> dict[str, Any]:
        t = tokens.shape[1]
        feeds: dict[str, Any] = {"input_ids": tokens, **(state.encoder or {})}
        names = set(self.decoder.inputs) | set(self.first_session.inputs if self.first_session is not None else ())
        if "decoder_attention_mask" in names:
            feeds["decoder_attention_mask"] = attention_mask
        elif "attention_mask" in names and ENCODER_MASK in names:  # Pix2Struct names its decoder's mask so
            feeds["attention_mask"] = attention_mask
        if "position_ids" in names:
            feeds["position_ids"] = position_ids(attention_mask, t)
        if "cache_position" in names:
            feeds["cache_position"] = np.arange(seen, seen + t, dtype=np.int64)
        if "use_cache_branch" in names:
            feeds["use_cache_branch"] = np.array([seen > 0 and self.use_cache])
        return feeds
