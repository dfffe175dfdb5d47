"""The KV-cache layout of a decoder graph, read from its input and output names (never from the model family).

optimum and transformers.js exports name the cache `past_key_values.N.key` / `.value` (decoder-only) or
`past_key_values.N.decoder.key` / `past_key_values.N.encoder.key` ... (encoder-decoder), and return it as the
outputs of the same name with `present` in place of `past_key_values`. Every cache tensor is
(batch, heads, sequence, head_dim); a fresh cache is a zero-length tensor along the sequence axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.errors import CorruptModelError

PAST_PREFIX = "past_key_values"
PRESENT_PREFIX = "present"
SEQUENCE_AXIS = 2

_NUMPY_OF_ORT = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}

# config.json keys for the cache shape when the graph leaves it symbolic (decoder-only, then encoder-decoder names)
_HEAD_KEYS = ("num_key_value_heads", "n_head", "num_attention_heads", "num_heads", "decoder_attention_heads")
_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model")


def is_past_name(name: str) -> bool:
    """Whether a graph input holds past key/values."""
    return name.startswith(PAST_PREFIX + ".") and name.endswith((".key", ".value"))


def present_name(past: str) -> str:
    """The output that returns the cache fed as `past`: 'past_key_values.0.key' -> 'present.0.key'."""
    return PRESENT_PREFIX + past[len(PAST_PREFIX):]


def is_cross_attention(name: str) -> bool:
    """Whether a cache tensor holds cross-attention key/values (computed once from the encoder output)."""
    return ".encoder." in name


@dataclass(frozen=True)
class CacheLayout:
    """Which graph inputs carry the cache, the outputs that return it, and each tensor's heads, head size, dtype."""

    past_names: tuple[str, ...]
    present_of: Mapping[str, str]
    heads: Mapping[str, int]
    head_dim: Mapping[str, int]
    dtypes: Mapping[str, Any]

    @classmethod
    def from_graph(
        cls,
        inputs: Mapping[str, str],
        input_shapes: Mapping[str, Sequence[Any]],
        outputs: Sequence[str],
        config: Mapping[str, Any],
    ) -> CacheLayout:
        """Read the layout from a graph's inputs (name -> ORT type string), input shapes and output names.

        Heads and head size come from the past inputs' static dims, else from config.json; a past input
        without its present output is a CorruptModelError (the graph cannot carry a cache between steps).
        """
        past = tuple(name for name in inputs if is_past_name(name))
        # cross-attention presents may be absent (decoder_with_past graphs): the first step's are kept
        missing = [present_name(n) for n in past if present_name(n) not in outputs and not is_cross_attention(n)]
        if missing:
            raise CorruptModelError(
                f"The decoder graph takes past key/values but has no outputs {missing[:4]} to return them; "
                "re-export it with a '-with-past' task (onnxpipe export --task text-generation does)."
            )
        heads, dims, dtypes = {}, {}, {}
        for name in past:
            shape = list(input_shapes.get(name) or [])
            if len(shape) != 4:
                raise CorruptModelError(
                    f"Cache input {name} has shape {shape}; onnxpipe reads (batch, heads, sequence, head_dim) caches only."
                )
            heads[name] = shape[1] if isinstance(shape[1], int) else _config_heads(config, name)
            dims[name] = shape[3] if isinstance(shape[3], int) else _config_head_dim(config, name)
            dtypes[name] = _NUMPY_OF_ORT.get(inputs[name], np.float32)
        return cls(past, {name: present_name(name) for name in past}, heads, dims, dtypes)

    @property
    def uses_cache(self) -> bool:
        """Whether the graph takes a cache at all (graphs exported without past run the whole sequence each step)."""
        return bool(self.past_names)

    @property
    def self_attention(self) -> tuple[str, ...]:
        """Past inputs that grow by one position per step."""
        return tuple(name for name in self.past_names if not is_cross_attention(name))

    @property
    def cross_attention(self) -> tuple[str, ...]:
        """Past inputs computed once from the encoder output (kept from the first step)."""
        return tuple(name for name in self.past_names if is_cross_attention(name))

    def empty(self, batch: int) -> dict[str, np.ndarray]:
        """Zero-length past tensors for a first step: (batch, heads, 0, head_dim) each."""
        return {
            name: np.zeros((batch, self.heads[name], 0, self.head_dim[name]), dtype=self.dtypes[name])
            for name in self.past_names
        }


def _config_heads(config: Mapping[str, Any], name: str) -> int:
    sub = config.get("decoder") if isinstance(config.get("decoder"), dict) else config
    for key in _HEAD_KEYS:
        if isinstance(sub.get(key), int):
            return sub[key]
    raise CorruptModelError(f"Cannot tell the head count of cache input {name}: the graph leaves it symbolic and config.json has none of {_HEAD_KEYS}.")


def _config_head_dim(config: Mapping[str, Any], name: str) -> int:
    sub = config.get("decoder") if isinstance(config.get("decoder"), dict) else config
    for key in ("head_dim", "d_kv"):
        if isinstance(sub.get(key), int):
            return sub[key]
    heads = next((sub[k] for k in ("num_attention_heads", "n_head", "num_heads") if isinstance(sub.get(k), int)), None)
    hidden: Optional[int] = next((sub[k] for k in _HIDDEN_KEYS if isinstance(sub.get(k), int)), None)
    if heads and hidden:
        return hidden // heads
    raise CorruptModelError(f"Cannot tell the head size of cache input {name}: the graph leaves it symbolic and config.json gives no head_dim.")


def position_ids(attention_mask: np.ndarray, new_tokens: int) -> np.ndarray:
    """Position ids of the last `new_tokens` columns, as transformers derives them for left-padded batches:
    cumsum(mask) - 1, with padded positions set to 1."""
    positions = np.cumsum(attention_mask, axis=-1, dtype=np.int64) - 1
    positions[attention_mask == 0] = 1
    return positions[:, -new_tokens:]
