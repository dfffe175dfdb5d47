"""BGE-M3's three outputs from one forward pass, in numpy, as FlagEmbedding's BGEM3 model computes them from the
encoder's last hidden state: dense (the [CLS] vector, L2-normalized), sparse (`relu(sparse_linear(token))`, one
weight per token, the largest per token id, special tokens dropped: its "lexical weights") and ColBERT vectors
(`colbert_linear` on every token after the first, L2-normalized).

BGE-M3 ships the two heads as `sparse_linear.pt` and `colbert_linear.pt` (torch state dicts, `weight` and `bias`)
beside the XLM-R checkpoint; the export stage writes them as `sparse_linear.safetensors` and
`colbert_linear.safetensors`, which the runtime reads without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Mapping

import numpy as np

from onnxpipe.errors import CorruptModelError, MissingModelFileError
from onnxpipe.model_folder import ModelFolder
from onnxpipe.text.safetensors_file import read_safetensors
from onnxpipe.text.sentence_transformers_config import l2_normalize

HEAD_FILES = {"sparse": "sparse_linear.safetensors", "colbert": "colbert_linear.safetensors"}


@dataclass(frozen=True)
class Linear:
    """A torch Linear layer's weights: `x @ weight.T + bias`."""

    weight: np.ndarray  # (out, in)
    bias: np.ndarray  # (out,)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The layer's output for a (..., in) array."""
        return (np.asarray(x, dtype=np.float32) @ self.weight.T + self.bias).astype(np.float32, copy=False)


@dataclass(frozen=True)
class BgeM3Heads:
    """BGE-M3's sparse head (hidden -> 1) and ColBERT head (hidden -> dim)."""

    sparse: Linear
    colbert: Linear


def read_bge_m3_heads(folder: ModelFolder, hidden_size: int) -> BgeM3Heads:
    """The folder's two heads; MissingModelFileError naming the files and the fix, CorruptModelError for bad shapes."""
    missing = [name for name in HEAD_FILES.values() if not (folder.path / name).is_file()]
    if missing:
        torch_files = [name.replace(".safetensors", ".pt") for name in missing]
        raise MissingModelFileError(
            f"{folder.path} has no {' or '.join(missing)}: hybrid-embedding needs BGE-M3's sparse and ColBERT heads. "
            f"Export a BGE-M3 checkpoint (with {' and '.join(torch_files)} beside it) with "
            "`onnxpipe export CHECKPOINT --task hybrid-embedding`, which converts them to safetensors."
        )
    layers = {}
    for kind, name in HEAD_FILES.items():
        tensors = read_safetensors(folder.path / name)
        weight, bias = tensors.get("weight"), tensors.get("bias")
        if weight is None or bias is None or weight.ndim != 2 or weight.shape[1] != hidden_size or bias.shape != weight.shape[:1]:
            shapes = {key: list(value.shape) for key, value in tensors.items()}
            raise CorruptModelError(
                f"{folder.path / name} must hold weight (out, {hidden_size}) and bias (out,) of a Linear layer; it holds "
                f"{shapes}. Re-export the checkpoint."
            )
        layers[kind] = Linear(weight.astype(np.float32), bias.astype(np.float32))
    if layers["sparse"].weight.shape[0] != 1:
        raise CorruptModelError(f"{folder.path / HEAD_FILES['sparse']} must map the hidden size to 1 weight per token, "
                                f"not {layers['sparse'].weight.shape[0]}.")
    return BgeM3Heads(layers["sparse"], layers["colbert"])


def dense_vector(hidden: np.ndarray) -> np.ndarray:
    """The [CLS] (first) token's vector of one input's real tokens (tokens, hidden), L2-normalized."""
    return l2_normalize(np.asarray(hidden[0], dtype=np.float32))


def lexical_weights(hidden: np.ndarray, ids: np.ndarray, heads: BgeM3Heads, unused_ids: Collection[int]) -> dict[int, float]:
    """Token id -> its largest `relu(sparse_linear)` weight over the input's real tokens, leaving out `unused_ids`
    (BGE-M3: the cls, eos, pad and unk tokens) and weights of zero, as FlagEmbedding's _process_token_weights."""
    weights = np.maximum(heads.sparse.apply(hidden)[:, 0], 0)
    result: dict[int, float] = {}
    for token, weight in zip(np.asarray(ids).tolist(), weights.tolist()):
        if token not in unused_ids and weight > 0 and weight > result.get(token, 0.0):
            result[token] = weight
    return result


def colbert_vectors(hidden: np.ndarray, heads: BgeM3Heads) -> np.ndarray:
    """`colbert_linear` on every real token after the first, L2-normalized: (tokens - 1, dim)."""
    return l2_normalize(heads.colbert.apply(np.asarray(hidden[1:], dtype=np.float32)))


def lexical_matching_score(first: Mapping[int, float], second: Mapping[int, float]) -> float:
    """FlagEmbedding's sparse score: the sum over token ids in both of the product of their weights."""
    return float(sum(weight * second[token] for token, weight in first.items() if token in second))


def colbert_score(query: np.ndarray, document: np.ndarray) -> float:
    """FlagEmbedding's ColBERT score: each query vector's best dot product with a document vector, averaged over the
    query's vectors (MaxSim divided by the query's length)."""
    query, document = np.asarray(query, dtype=np.float32), np.asarray(document, dtype=np.float32)
    if not len(query) or not len(document):
        return 0.0
    return float((query @ document.T).max(axis=1).sum() / len(query))
