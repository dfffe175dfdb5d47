"""ColBERT late interaction in numpy: a ColBERT folder's configuration (PyLate's layout), its token layout (marker
token after [CLS], queries padded with [MASK] to a fixed length: query augmentation), the per-token projection and
MaxSim scoring.

PyLate saves a ColBERT model as a sentence-transformers folder: modules.json lists the Transformer and one or more
Dense modules (`linear.weight` in `1_Dense/model.safetensors`, applied to every token), and
config_sentence_transformers.json holds `query_prefix` / `document_prefix` (marker tokens added to the tokenizer,
"[Q] " / "[D] "), `query_length` / `document_length` (tokens, marker included), `do_query_expansion`,
`attend_to_expansion_tokens` and `skiplist_words` (tokens left out of document vectors). Missing keys take PyLate's
defaults, which are the ColBERT paper's (Khattab & Zaharia, 2020) settings.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from onnxpipe.model_folder import ModelFolder
from onnxpipe.text.safetensors_file import read_safetensors
from onnxpipe.text.sentence_transformers_config import ACTIVATIONS, Dense, l2_normalize

# PyLate's defaults for keys a folder's config_sentence_transformers.json leaves out
DEFAULTS = {
    "query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": 32, "document_length": 180,
    "do_query_expansion": True, "attend_to_expansion_tokens": False, "skiplist_words": list(string.punctuation),
}
_DENSE_TYPES = ("Dense",)
_TRANSFORMERS = ("Transformer",)


@dataclass(frozen=True)
class ColbertConfig:
    """What makes a ColBERT folder's token vectors: markers, lengths, expansion, skiplist and projection."""

    query_prefix: str = DEFAULTS["query_prefix"]
    document_prefix: str = DEFAULTS["document_prefix"]
    query_length: int = DEFAULTS["query_length"]
    document_length: int = DEFAULTS["document_length"]
    do_query_expansion: bool = True
    attend_to_expansion_tokens: bool = False
    skiplist_words: tuple[str, ...] = tuple(DEFAULTS["skiplist_words"])
    projection: tuple[Dense, ...] = field(default_factory=tuple)
    problem: Optional[str] = None  # why the folder's vectors cannot be computed here

    def project(self, tokens: np.ndarray) -> np.ndarray:
        """Token vectors (n, hidden) through the folder's Dense layers, L2-normalized: (n, dim)."""
        vectors = np.asarray(tokens, dtype=np.float32)
        for layer in self.projection:
            vectors = layer.apply(vectors)
        return l2_normalize(vectors)


def read_colbert_config(folder: ModelFolder) -> ColbertConfig:
    """The folder's ColBERT configuration; `problem` says what is missing or not computed here."""
    where = folder.path
    modules = folder.read_json("modules.json")
    if not isinstance(modules, list) or not modules or not all(isinstance(m, dict) for m in modules):
        return ColbertConfig(problem=(
            f"{where} has no modules.json listing a Transformer and its Dense projection, so it is not a ColBERT model "
            "in PyLate's layout; multi-vector-embedding reads ColBERT models saved by PyLate (e.g. lightonai/*ColBERT*)."
        ))
    settings = {**DEFAULTS, **{k: v for k, v in folder.read_json("config_sentence_transformers.json").items() if k in DEFAULTS}}
    layers: list[Dense] = []
    for position, module in enumerate(sorted(modules, key=lambda m: int(m.get("idx", 0)))):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = str(module.get("path", "") or "")
        if position == 0 and kind in _TRANSFORMERS:
            continue
        if position == 0 or kind not in _DENSE_TYPES:
            return ColbertConfig(problem=(
                f"{where}/modules.json holds {module.get('type')!r} at position {position}; onnxpipe computes ColBERT "
                "models made of a Transformer followed by Dense projections."
            ))
        layer, why = _dense_layer(folder, path)
        if layer is None:
            return ColbertConfig(problem=why)
        layers.append(layer)
    lengths = (settings["query_length"], settings["document_length"])
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 2 for n in lengths):
        return ColbertConfig(problem=f"{where}/config_sentence_transformers.json has query_length / document_length {lengths}; both must be ints above 2.")
    return ColbertConfig(
        query_prefix=str(settings["query_prefix"]), document_prefix=str(settings["document_prefix"]),
        query_length=lengths[0], document_length=lengths[1],
        do_query_expansion=bool(settings["do_query_expansion"]),
        attend_to_expansion_tokens=bool(settings["attend_to_expansion_tokens"]),
        skiplist_words=tuple(str(w) for w in settings["skiplist_words"] or ()), projection=tuple(layers),
    )


def _dense_layer(folder: ModelFolder, path: str) -> tuple[Optional[Dense], str]:
    """(the Dense projection at `path`, or None and why it cannot be used)."""
    config = folder.read_json(f"{path}/config.json")
    if config.get("use_residual"):
        return None, f"the Dense module in {folder.path / path} has use_residual=true, which onnxpipe does not compute."
    activation = str(config.get("activation_function") or "torch.nn.modules.linear.Identity").rsplit(".", 1)[-1]
    if activation not in ACTIVATIONS:
        return None, f"the Dense module in {folder.path / path} uses activation {activation!r}; onnxpipe computes {sorted(ACTIVATIONS)}."
    weights_path = folder.path / path / "model.safetensors"
    if not weights_path.is_file():
        return None, (f"{folder.path / path} has no model.safetensors (the projection's weights); export the checkpoint with "
                      "`onnxpipe export CHECKPOINT --task multi-vector-embedding`, which converts pytorch_model.bin.")
    tensors = read_safetensors(weights_path)
    weight = tensors.get("linear.weight")
    if weight is None or weight.ndim != 2:
        return None, f"{weights_path} has no 2-D linear.weight."
    bias = tensors.get("linear.bias")
    return Dense(weight.astype(np.float32), None if bias is None else bias.astype(np.float32), activation), ""


def maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """ColBERT's late-interaction score: for each query vector its best dot product with a document vector, summed
    over the query (PyLate's colbert_scores)."""
    query, document = np.asarray(query, dtype=np.float32), np.asarray(document, dtype=np.float32)
    if query.ndim != 2 or document.ndim != 2 or query.shape[1] != document.shape[1]:
        raise ValueError(f"maxsim takes (query tokens, dim) and (document tokens, dim) arrays, got {query.shape} and {document.shape}.")
    if not len(query) or not len(document):
        return 0.0
    return float((query @ document.T).max(axis=1).sum())


def maxsim_matrix(queries: Sequence[np.ndarray], documents: Sequence[np.ndarray]) -> np.ndarray:
    """MaxSim of every query with every document: (queries, documents) float32."""
    return np.array([[maxsim(q, d) for d in documents] for q in queries], dtype=np.float32).reshape(len(queries), len(documents))
