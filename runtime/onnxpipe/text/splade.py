"""SPLADE sparse vectors from a masked-LM head, in numpy: `log(1 + relu(logits))` pooled over an input's real
tokens, as sentence-transformers' SpladePooling computes them, and the `{indices, values}` form of a sparse vector.

The pooling settings come from the folder's `modules.json` (a SpladePooling module's `pooling_strategy` "max" or
"sum" and `activation_function` "relu" or "log1p_relu"); a folder without one gets SPLADE v2's max pooling of
log(1 + relu), which is also what TEI computes for a masked-LM model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from onnxpipe.model_folder import ModelFolder

STRATEGIES = ("max", "sum")
ACTIVATIONS = ("relu", "log1p_relu")
# modules.json class names after the Transformer that onnxpipe computes (MLMTransformer: sentence-transformers 4.x)
_TRANSFORMERS = ("Transformer", "MLMTransformer")


@dataclass(frozen=True)
class SpladeConfig:
    """How token logits become a sparse vector."""

    pooling_strategy: str = "max"  # over the input's tokens
    activation: str = "relu"  # log1p(relu(x)), or log1p(log1p(relu(x))) for "log1p_relu"
    problem: Optional[str] = None  # why the folder's sparse vector cannot be computed here


def read_splade_config(folder: ModelFolder) -> SpladeConfig:
    """The folder's SpladePooling settings (modules.json); defaults when it has no modules.json."""
    modules = folder.read_json("modules.json")
    if not modules:
        return SpladeConfig()
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        return SpladeConfig(problem=f"{folder.path / 'modules.json'} is not a list of modules; restore it.")
    kinds = [(str(m.get("type", "")).rsplit(".", 1)[-1], str(m.get("path", "") or ""))
             for m in sorted(modules, key=lambda m: int(m.get("idx", 0)))]
    names = [kind for kind, _ in kinds]
    if len(kinds) != 2 or kinds[0][0] not in _TRANSFORMERS or kinds[1][0] != "SpladePooling":
        return SpladeConfig(problem=(
            f"{folder.path} is a sentence-transformers model with modules {names}; onnxpipe computes sparse vectors "
            "for [Transformer (fill-mask), SpladePooling] (SPLADE). Models with SparseStaticEmbedding or "
            "SparseAutoEncoder modules are not supported."
        ))
    config = folder.read_json(f"{kinds[1][1]}/config.json" if kinds[1][1] else "config.json")
    strategy = config.get("pooling_strategy", "max")
    activation = config.get("activation_function", "relu")
    if strategy not in STRATEGIES or activation not in ACTIVATIONS:
        return SpladeConfig(problem=(
            f"the SpladePooling module in {folder.path / kinds[1][1]} has pooling_strategy {strategy!r} and "
            f"activation_function {activation!r}; onnxpipe computes {STRATEGIES} and {ACTIVATIONS}."
        ))
    return SpladeConfig(strategy, activation)


def splade_vector(logits: np.ndarray, config: SpladeConfig) -> np.ndarray:
    """The dense (vocabulary-wide) SPLADE vector of one input from its real tokens' logits (tokens, vocab)."""
    weights = np.log1p(np.maximum(np.asarray(logits, dtype=np.float32), 0))
    if config.activation == "log1p_relu":
        weights = np.log1p(weights)
    if not len(weights):
        return np.zeros(weights.shape[-1], np.float32)
    pooled = weights.max(axis=0) if config.pooling_strategy == "max" else weights.sum(axis=0)
    return pooled.astype(np.float32, copy=False)


def top_dims(vector: np.ndarray, top_k: Optional[int]) -> np.ndarray:
    """`vector` with all but its `top_k` largest absolute values set to zero (sentence-transformers'
    max_active_dims; ties go to the lower index); None keeps every value."""
    if top_k is None or top_k >= vector.size:
        return vector
    keep = np.argsort(-np.abs(vector), kind="stable")[:top_k]
    pruned = np.zeros_like(vector)
    pruned[keep] = vector[keep]
    return pruned


def sparse_of(vector: np.ndarray) -> dict[str, list]:
    """The non-zero entries of a dense vector as {"indices": [int, ...], "values": [float, ...]}, by ascending index
    (the order of a coalesced torch sparse tensor and of TEI's /embed_sparse)."""
    indices = np.flatnonzero(vector)
    return {"indices": indices.tolist(), "values": vector[indices].astype(np.float32).tolist()}


def dense_of(sparse: dict[str, list], size: int) -> np.ndarray:
    """A {"indices", "values"} sparse vector back as a dense float32 array of `size` dimensions."""
    vector = np.zeros(size, np.float32)
    vector[np.asarray(sparse["indices"], dtype=np.int64)] = np.asarray(sparse["values"], dtype=np.float32)
    return vector
