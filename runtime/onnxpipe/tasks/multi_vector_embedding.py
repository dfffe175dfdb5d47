"""multi-vector-embedding: ColBERT token vectors (late interaction) from a base-model graph plus the folder's Dense
projection, in PyLate's layout (text/colbert.py), and MaxSim scoring.

A text becomes `[CLS] marker tokens... [SEP]`, the marker ("[Q] " for queries, "[D] " for documents) inserted after
[CLS] and the whole cut to query_length / document_length. Queries are padded with [MASK] to query_length (query
augmentation; the model attends to those tokens only when attend_to_expansion_tokens says so) and keep every
position; documents keep their real tokens less the skiplist's (punctuation). Each kept token's vector is
projected and L2-normalized. The name is onnxpipe's: transformers has no pipeline for it.

Output per input: a (tokens, dim) nested list, or a float32 array with return_tensors=True. Options: is_query,
return_tensors, truncation, max_length (overrides the folder's length), batch_size. `score(queries, documents)`
gives MaxSim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, Union

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.options import check_bool
from onnxpipe.tasks.text_base import TOKENIZER_OPTIONS, TextPipeline, check_tokenizer_options
from onnxpipe.text.colbert import maxsim, maxsim_matrix, read_colbert_config
from onnxpipe.text.tokenizer import EncodedBatch

_HIDDEN_NAMES = ("last_hidden_state", "token_embeddings")


@dataclass(frozen=True)
class ColbertTokens:
    """One input's token ids as the model sees them, and which positions give an output vector."""

    ids: list[int]
    type_ids: list[int]
    attention: list[int]
    keep: list[bool]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class ColbertBatch(EncodedBatch):
    """A right-padded batch with the positions whose vectors are kept."""

    keep: np.ndarray


class MultiVectorEmbeddingPipeline(TextPipeline):
    """ColBERT multi-vector embeddings; options: is_query, return_tensors, truncation, max_length, batch_size."""

    OPTIONS = {"is_query": False, "return_tensors": False, **TOKENIZER_OPTIONS}

    def setup(self) -> None:
        super().setup()
        names = self.session.output_names
        self.hidden_name = next((n for n in _HIDDEN_NAMES if n in names), names[0])
        self.colbert = read_colbert_config(self.folder)
        if self.colbert.problem:
            raise InvalidOptionError(self.colbert.problem)
        tokenizer = self.encoder.tokenizer
        self.marker_ids = {}
        for is_query, marker in ((True, self.colbert.query_prefix), (False, self.colbert.document_prefix)):
            token_id = tokenizer.token_to_id(marker)
            if token_id is None:
                raise InvalidOptionError(
                    f"{self.folder.path}'s tokenizer has no token {marker!r}, the ColBERT marker its "
                    "config_sentence_transformers.json names; restore tokenizer.json from the checkpoint."
                )
            self.marker_ids[is_query] = token_id
        mask_token = self.encoder.special_token("mask_token")
        self.mask_id = tokenizer.token_to_id(mask_token) if mask_token else None
        if self.colbert.do_query_expansion and self.mask_id is None:
            raise InvalidOptionError(f"{self.folder.path} asks for query expansion with [MASK] tokens, but its tokenizer has no mask token.")
        unknown = tokenizer.token_to_id(self.encoder.special_token("unk_token") or "")
        skip = {tokenizer.token_to_id(word) for word in self.colbert.skiplist_words}
        if None in skip:  # PyLate's convert_tokens_to_ids maps a word outside the vocabulary to the unknown token
            skip = (skip - {None}) | ({unknown} if unknown is not None else set())
        self.skip_ids = frozenset(skip)

    def validate_options(self, options: dict[str, Any]) -> None:
        check_tokenizer_options(options)
        check_bool("is_query", options["is_query"])
        check_bool("return_tensors", options["return_tensors"])

    def encode(self, sentences: Union[str, Sequence[str]], is_query: bool = False, **options: Any) -> Any:
        """PyLate's `ColBERT.encode`: one float32 (tokens, dim) array per text (a list for a list of texts)."""
        return self(sentences, is_query=is_query, return_tensors=True, **options)

    def score(self, queries: Any, documents: Any) -> Any:
        """MaxSim of query vectors with document vectors: two (tokens, dim) arrays give a float; lists of them give
        a (queries, documents) array. Strings are encoded first (as queries and as documents)."""
        if isinstance(queries, (str, list)) and (isinstance(queries, str) or all(isinstance(q, str) for q in queries)):
            queries = self.encode(queries, is_query=True)
        if isinstance(documents, (str, list)) and (isinstance(documents, str) or all(isinstance(d, str) for d in documents)):
            documents = self.encode(documents)
        if isinstance(queries, np.ndarray) and isinstance(documents, np.ndarray):
            return maxsim(queries, documents)
        queries = [queries] if isinstance(queries, np.ndarray) else queries
        documents = [documents] if isinstance(documents, np.ndarray) else documents
        return maxsim_matrix(queries, documents)

    def prepare(self, items: list[str], options: dict[str, Any]) -> list[ColbertTokens]:
        is_query = options["is_query"]
        config = self.colbert
        length = options["max_length"] or (config.query_length if is_query else config.document_length)
        if self.encoder.model_max_length is not None:
            length = min(length, self.encoder.model_max_length)
        # the marker takes one position: the text is cut to one token less, as PyLate does
        encodings = self.encoder.tokenize(items, None, options["truncation"], length - 1)
        expand = is_query and config.do_query_expansion
        pieces = []
        for encoding in encodings:
            ids = [*encoding.ids[:1], self.marker_ids[is_query], *encoding.ids[1:]]
            if len(ids) > length:
                raise InvalidInputError(f"An input has {len(ids)} tokens with its marker, past the {length} this model takes; shorten it or pass truncation=True.")
            types = [*encoding.type_ids[:1], 0, *encoding.type_ids[1:]]
            extra = length - len(ids) if expand else 0
            attention = [1] * len(ids) + [int(config.attend_to_expansion_tokens)] * extra
            keep = [True] * (len(ids) + extra) if expand else [i not in self.skip_ids for i in ids]
            if is_query and not expand:
                keep = [True] * len(ids)
            pieces.append(ColbertTokens(ids + [self.mask_id] * extra, types + [0] * extra, attention, keep))
        return pieces

    def collate(self, pieces: Sequence[ColbertTokens], options: dict[str, Any]) -> ColbertBatch:
        width = max(len(p) for p in pieces)
        ids = np.full((len(pieces), width), self.encoder.pad_id, dtype=np.int64)
        mask = np.zeros((len(pieces), width), dtype=np.int64)
        types = np.zeros((len(pieces), width), dtype=np.int64)
        keep = np.zeros((len(pieces), width), dtype=bool)
        for row, piece in enumerate(pieces):
            n = len(piece)
            ids[row, :n], mask[row, :n], types[row, :n], keep[row, :n] = piece.ids, piece.attention, piece.type_ids, piece.keep
        return ColbertBatch(ids, mask, types, keep)

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: ColbertBatch, row: int, options: dict[str, Any]) -> Any:
        vectors = self.colbert.project(outputs[self.hidden_name][row][encoded.keep[row]])
        return vectors if options["return_tensors"] else vectors.tolist()
