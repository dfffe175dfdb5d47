"""A Decoder (onnxpipe.generation protocol) over a transformers torch model: tests only.

It calls the model the way transformers' generate() does (position ids from the attention mask for
decoder-only models, a DynamicCache / EncoderDecoderCache, logits of the last position only), so the
numpy search loops can be checked token for token against `model.generate` without ONNX.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import numpy as np
import torch


class TorchDecoder:
    """onnxpipe.generation.Decoder over a transformers *ForCausalLM / *ForConditionalGeneration model."""

    def __init__(self, model: Any):
        self.model = model.eval()
        self.is_encoder_decoder = bool(model.config.is_encoder_decoder)
        self._keep = "logits_to_keep" in inspect.signature(model.forward).parameters
        self.rows_fed: list = []  # rows of every step call (tests read it)

    def prepare(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict:
        state: dict = {"past": None}
        if self.is_encoder_decoder:
            mask = torch.from_numpy(np.asarray(attention_mask, dtype=np.int64))
            with torch.no_grad():
                encoded = self.model.get_encoder()(
                    input_ids=torch.from_numpy(np.asarray(input_ids, dtype=np.int64)), attention_mask=mask,
                    return_dict=True,
                )
            state.update(encoder=encoded.last_hidden_state, encoder_mask=mask)
        return state

    def step(self, state: dict, tokens: np.ndarray, attention_mask: np.ndarray):
        self.rows_fed.append(int(tokens.shape[0]))
        ids = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
        past = state["past"]
        kwargs: dict = {"use_cache": True, "return_dict": True}
        if self._keep:
            kwargs["logits_to_keep"] = 1
        if self.is_encoder_decoder:
            from transformers.modeling_outputs import BaseModelOutput

            if past is None:
                from transformers.cache_utils import DynamicCache, EncoderDecoderCache

                past = EncoderDecoderCache(DynamicCache(), DynamicCache())
            kwargs.update(
                encoder_outputs=BaseModelOutput(last_hidden_state=state["encoder"]),
                attention_mask=state["encoder_mask"], decoder_input_ids=ids, past_key_values=past,
            )
        else:
            from transformers.cache_utils import DynamicCache

            mask = torch.from_numpy(np.asarray(attention_mask, dtype=np.int64))
            past = DynamicCache() if past is None else past
            seen = past.get_seq_length()
            position_ids = mask.cumsum(-1) - 1
            position_ids = position_ids.masked_fill(mask == 0, 1)[:, -ids.shape[1]:]
            kwargs.update(
                input_ids=ids, attention_mask=mask, position_ids=position_ids, past_key_values=past,
                cache_position=torch.arange(seen, seen + ids.shape[1]),
            )
        with torch.no_grad():
            out = self.model(**kwargs)
        logits = out.logits[:, -1, :].to(dtype=torch.float32).numpy().copy()
        new_state = dict(state)
        new_state["past"] = out.past_key_values
        return logits, new_state

    def select(self, state: dict, rows: np.ndarray) -> dict:
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        new_state = dict(state)
        if state["past"] is not None:
            past = copy.deepcopy(state["past"])
            past.reorder_cache(index)
            new_state["past"] = past
        if self.is_encoder_decoder:
            new_state["encoder"] = state["encoder"].index_select(0, index)
            new_state["encoder_mask"] = state["encoder_mask"].index_select(0, index)
        return new_state
