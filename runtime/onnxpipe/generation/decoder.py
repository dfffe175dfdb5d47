"""The one thing generation/ knows about a model: the Decoder protocol.

A Decoder maps new token ids plus an opaque state (KV cache, encoder outputs) to the logits of the next
token and a new state. The search loops (greedy, sampling, beam) drive it; ONNX adapters implement it by
reading input/output names from their sessions, never by model family.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

State = Any  # opaque to generation/: whatever the decoder needs between steps (cache, encoder outputs, masks)


class Decoder(Protocol):
    """An autoregressive model seen one step at a time."""

    is_encoder_decoder: bool

    def prepare(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> State:
        """Start generating for a batch of prompts (B, S) int64 with their mask (1 = real token).

        Encoder-decoder models run their encoder here and keep its outputs and mask in the state;
        decoder-only models return an empty cache. No logits yet.
        """
        ...

    def step(self, state: State, tokens: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, State]:
        """Feed `tokens` (B, t) int64 after what `state` has seen; return the last position's logits (B, V) float32.

        `attention_mask` (B, seen + t) covers every decoder position so far (1 = real, 0 = left padding).
        With a fresh state from `prepare` the whole sequence is fed at once (the prompt for decoder-only
        models, the decoder start tokens for encoder-decoder ones); later calls feed one token per row.
        """
        ...

    def select(self, state: State, rows: np.ndarray) -> State:
        """The state with its batch rows taken in the order of `rows` (int64, may repeat): beam reordering,
        expanding each prompt to num_beams or num_return_sequences rows, dropping finished rows.

        `state` itself must stay usable: with use_cache=False generate() keeps the prepared state and,
        at every step, selects its rows again and feeds the whole sequence to the selection.
        """
        ...
