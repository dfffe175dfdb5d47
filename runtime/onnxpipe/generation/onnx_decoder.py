"""The Decoder protocol over a decoder-only ONNX graph (GPT-2, Llama, ... as optimum exports them).

Everything comes from the graph's names: `input_ids`, `attention_mask`, `position_ids`, `cache_position`,
`use_cache_branch` (merged graphs), `past_key_values.N.*` in and `present.N.*` out, `logits`. Each step hands
the graph's present outputs back as the next past unchanged (no concatenation in numpy); graphs without a
cache, or `use_cache=False`, get the whole sequence every step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional

import numpy as np

from onnxpipe.errors import InvalidInputError
from onnxpipe.generation.io_binding import LOGITS, BoundRunner, plan_step
from onnxpipe.generation.kv_cache import CacheLayout, position_ids


@dataclass(frozen=True)
class CacheState:
    """What a decoder carries between steps: the cache (None before the first step), how many positions it
    has seen, the tokens so far when running without a cache, and the encoder output of seq2seq models."""

    past: Optional[Mapping[str, Any]] = None  # input name -> numpy array (or OrtValue when bound to a device)
    seen: int = 0
    history: Optional[np.ndarray] = None  # (B, seen) token ids, only without a cache
    batch: int = 0
    encoder: Optional[Mapping[str, Any]] = None  # encoder_hidden_states / encoder_attention_mask (seq2seq)
    # which prompt's encoder output each row carries (None: row i carries prompt i); rows with the same origin hold
    # identical encoder outputs and cross-attention caches, so reordering beams within a prompt leaves them as they are
    origin: Optional[np.ndarray] = None


def graph_layout(session: Any, config: Mapping[str, Any]) -> CacheLayout:
    """The cache layout of an OnnxSession's graph."""
    shapes = {i.name: i.shape for i in session.session.get_inputs()}
    return CacheLayout.from_graph(session.inputs, shapes, session.output_names, config)


def take_rows(value: Any, rows: np.ndarray, runner: Optional[BoundRunner]) -> Any:
    """Rows of a numpy array or device OrtValue along the batch axis (device values go through the host)."""
    if isinstance(value, np.ndarray):
        return np.take(value, rows, axis=0)
    return runner.to_device(np.take(runner.to_host(value), rows, axis=0))


def last_logits(logits: np.ndarray) -> np.ndarray:
    """The last position's logits (B, V) as float32."""
    return np.ascontiguousarray(logits[:, -1, :], dtype=np.float32)


class OnnxDecoder:
    """A decoder-only ONNX graph seen one step at a time (implements generation.decoder.Decoder)."""

    is_encoder_decoder = False

    def __init__(
        self,
        session: Any,
        config: Mapping[str, Any],
        *,
        use_cache: bool = True,
        io_binding: Optional[bool] = None,
    ):
        self.session = session
        self.layout = graph_layout(session, config)
        self.use_cache = use_cache and self.layout.uses_cache
        kind, index = device_of(session)
        bind = kind == "cuda" if io_binding is None else io_binding
        self.runner = BoundRunner(session, kind, index) if bind and self.use_cache else None
        names = set(session.inputs)
        self.has_mask = "attention_mask" in names
        self.has_positions = "position_ids" in names
        self.has_cache_position = "cache_position" in names
        self.has_branch = "use_cache_branch" in names

    def prepare(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> CacheState:
        """An empty state for a batch of prompts; the first `step` feeds them."""
        return CacheState(batch=int(np.shape(input_ids)[0]))

    def step(self, state: CacheState, tokens: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, CacheState]:
        """Feed `tokens` (B, t) after what `state` has seen; `attention_mask` covers seen + t positions."""
        tokens = np.asarray(tokens, dtype=np.int64)
        attention_mask = np.asarray(attention_mask, dtype=np.int64)
        if not self.use_cache:
            history = grown_history(state, tokens, attention_mask)
            feeds = self._feeds(history, attention_mask, 0)
            feeds.update(self.layout.empty(history.shape[0]))
            logits = self.session.run(feeds, [LOGITS])[LOGITS]
            return last_logits(logits), replace(state, history=history, seen=history.shape[1], batch=history.shape[0])
        check_mask(attention_mask, state.seen + tokens.shape[1])
        feeds = self._feeds(tokens, attention_mask, state.seen)
        first = state.past is None
        past = self.layout.empty(tokens.shape[0]) if first else state.past
        if self.runner is not None:
            plan = plan_step(self.session.inputs, self.layout, first_step=first)
            host, device = self.runner.run(plan, {**feeds, **(past if first else {})}, {} if first else past)
            logits, presents = host[LOGITS], device
        else:
            wanted = [LOGITS, *(self.layout.present_of[name] for name in self.layout.past_names)]
            outputs = self.session.run({**feeds, **past}, wanted)
            logits, presents = outputs[LOGITS], outputs
        new_past = {name: presents[self.layout.present_of[name]] for name in self.layout.past_names}
        return last_logits(logits), replace(state, past=new_past, seen=state.seen + tokens.shape[1], batch=tokens.shape[0])

    def select(self, state: CacheState, rows: np.ndarray) -> CacheState:
        """The state with batch rows taken in the order of `rows` (beam reordering, expansion)."""
        rows = np.asarray(rows, dtype=np.int64)
        past = None if state.past is None else {k: take_rows(v, rows, self.runner) for k, v in state.past.items()}
        history = None if state.history is None else np.take(state.history, rows, axis=0)
        return replace(state, past=past, history=history, batch=len(rows))

    def _feeds(self, tokens: np.ndarray, attention_mask: np.ndarray, seen: int) -> dict[str, np.ndarray]:
        feeds = {"input_ids": tokens}
        t = tokens.shape[1]
        if self.has_mask:
            feeds["attention_mask"] = attention_mask
        if self.has_positions:
            feeds["position_ids"] = position_ids(attention_mask, t)
        if self.has_cache_position:
            feeds["cache_position"] = np.arange(seen, seen + t, dtype=np.int64)
        if self.has_branch:
            feeds["use_cache_branch"] = np.array([seen > 0])
        return feeds


def check_mask(attention_mask: np.ndarray, width: int) -> None:
    """Raise InvalidInputError unless the mask covers exactly `width` positions (everything seen plus this step)."""
    if attention_mask.ndim != 2 or attention_mask.shape[1] != width:
        raise InvalidInputError(
            f"attention_mask has shape {attention_mask.shape}; the decoder has seen {width} positions including "
            f"this step's tokens, so it must be (batch, {width})."
        )


def grown_history(state: CacheState, tokens: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Without a cache: every token so far plus this step's (B, seen + t), checked against the mask's width."""
    history = tokens if state.history is None else np.concatenate([state.history, tokens], axis=1)
    check_mask(attention_mask, history.shape[1])
    return history


def device_of(session: Any) -> tuple[str, int]:
    """('cuda', device_id) when the session runs on the CUDA provider, else ('cpu', 0)."""
    if "CUDAExecutionProvider" not in getattr(session, "providers", []):
        return ("cpu", 0)
    options = session.session.get_provider_options().get("CUDAExecutionProvider", {})
    return ("cuda", int(options.get("device_id", 0)))
