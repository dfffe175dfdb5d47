"""hybrid-embedding: BGE-M3's dense, sparse and ColBERT outputs from one export and one forward pass (a base-model
graph plus the folder's sparse_linear / colbert_linear heads, applied in numpy: text/bge_m3.py).

Each input gives `{"dense": [...], "sparse": {"indices": [...], "values": [...]}, "colbert": [[...], ...]}`, with the
outputs the options ask for (return_dense, return_sparse, return_colbert; all by default); `sparse` lists token ids
by ascending id. return_tensors=True gives float32 arrays. `encode()` answers in FlagEmbedding's
`BGEM3FlagModel.encode` shape ({"dense_vecs", "lexical_weights", "colbert_vecs"}) and `lexical_matching_score` /
`colbert_score` score as FlagEmbedding does. The name is onnxpipe's: transformers has no pipeline for it.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np

from onnxpipe.errors import InvalidOptionError
from onnxpipe.options import check_bool
from onnxpipe.tasks.text_base import TOKENIZER_OPTIONS, TextPipeline, check_tokenizer_options
from onnxpipe.text.bge_m3 import (
    colbert_score,
    colbert_vectors,
    dense_vector,
    lexical_matching_score,
    lexical_weights,
    read_bge_m3_heads,
)
from onnxpipe.text.tokenizer import EncodedBatch

_HIDDEN_NAMES = ("last_hidden_state", "token_embeddings")
# special tokens BGE-M3 leaves out of its lexical weights
_UNUSED_TOKENS = ("cls_token", "eos_token", "pad_token", "unk_token")
_OUTPUTS = ("return_dense", "return_sparse", "return_colbert")


class HybridEmbeddingPipeline(TextPipeline):
    """BGE-M3 dense + sparse + ColBERT; options: return_dense, return_sparse, return_colbert, return_tensors."""

    OPTIONS = {"return_dense": True, "return_sparse": True, "return_colbert": True, "return_tensors": False, **TOKENIZER_OPTIONS}

    def setup(self) -> None:
        super().setup()
        names = self.session.output_names
        self.hidden_name = next((n for n in _HIDDEN_NAMES if n in names), names[0])
        hidden = self.folder.config.get("hidden_size")
        declared = self.session.output_shapes.get(self.hidden_name, ())
        if not isinstance(hidden, int) and declared and isinstance(list(declared)[-1], int):
            hidden = list(declared)[-1]
        self.heads = read_bge_m3_heads(self.folder, hidden)
        ids = (self.encoder.tokenizer.token_to_id(self.encoder.special_token(name) or "") for name in _UNUSED_TOKENS)
        self.unused_ids = frozenset(i for i in ids if i is not None)

    def validate_options(self, options: dict[str, Any]) -> None:
        check_tokenizer_options(options)
        for name in (*_OUTPUTS, "return_tensors"):
            check_bool(name, options[name])
        if not any(options[name] for name in _OUTPUTS):
            raise InvalidOptionError("return_dense, return_sparse and return_colbert are all False: ask for at least one output.")

    def encode(self, sentences: Union[str, Sequence[str]], return_dense: bool = True, return_sparse: bool = False,
               return_colbert_vecs: bool = False, **options: Any) -> dict[str, Any]:
        """`BGEM3FlagModel.encode`'s answer: {"dense_vecs": (n, dim) array, "lexical_weights": [{token id str:
        weight}], "colbert_vecs": [(tokens - 1, dim) arrays]}, without the outputs not asked for (one item each
        for a string)."""
        results = self(sentences, return_dense=return_dense, return_sparse=return_sparse, return_colbert=return_colbert_vecs,
                       return_tensors=True, **options)
        single = isinstance(sentences, str)
        items = [results] if single else results
        answer: dict[str, Any] = {}
        if return_dense:
            answer["dense_vecs"] = np.stack([item["dense"] for item in items])
        if return_sparse:
            answer["lexical_weights"] = [{str(i): float(v) for i, v in zip(item["sparse"]["indices"], item["sparse"]["values"])}
                                         for item in items]
        if return_colbert_vecs:
            answer["colbert_vecs"] = [item["colbert"] for item in items]
        return {key: value[0] for key, value in answer.items()} if single else answer

    @staticmethod
    def lexical_matching_score(first: dict[Any, float], second: dict[Any, float]) -> float:
        """FlagEmbedding's sparse score of two lexical-weight dicts: the sum of products over shared token ids."""
        return lexical_matching_score(first, second)

    @staticmethod
    def colbert_score(query: np.ndarray, document: np.ndarray) -> float:
        """FlagEmbedding's ColBERT score: MaxSim averaged over the query's vectors."""
        return colbert_score(query, document)

    def prepare(self, items: list[str], options: dict[str, Any]) -> list:
        return self.encoder.tokenize(items, None, options["truncation"], options["max_length"])

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: EncodedBatch, row: int, options: dict[str, Any]) -> Any:
        mask = encoded.attention_mask[row].astype(bool)
        hidden = outputs[self.hidden_name][row][mask].astype(np.float32, copy=False)
        tensors = options["return_tensors"]
        result: dict[str, Any] = {}
        if options["return_dense"]:
            dense = dense_vector(hidden)
            result["dense"] = dense if tensors else dense.tolist()
        if options["return_sparse"]:
            weights = lexical_weights(hidden, encoded.input_ids[row][mask], self.heads, self.unused_ids)
            indices = sorted(weights)
            result["sparse"] = {"indices": indices, "values": [weights[i] for i in indices]}
        if options["return_colbert"]:
            vectors = colbert_vectors(hidden, self.heads)
            result["colbert"] = vectors if tensors else vectors.tolist()
        return result
