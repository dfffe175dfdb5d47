"""text-ranking: a cross-encoder (reranker) scores each (query, document) pair and returns the documents best
first, as sentence-transformers' `CrossEncoder.rank` does: `[{"corpus_id", "score", "text"?}]`.

The graph is a one-logit sequence classifier (exported with `--task text-ranking`, or any text-classification
export of a cross-encoder). The score is the logit through the activation the checkpoint's config names
(`sentence_transformers.activation_fn`, or the older `sbert_ce_default_activation_function`), sigmoid when it
names none, as CrossEncoder does; `raw_scores=True` returns the logit itself (TEI's name for it).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.options import check_bool, check_top_k
from onnxpipe.tasks.text_base import TOKENIZER_OPTIONS, TextPipeline, check_tokenizer_options
from onnxpipe.text.sentence_transformers_config import ACTIVATIONS
from onnxpipe.text.tokenizer import EncodedBatch


def activation_of(config: Mapping[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """The function a cross-encoder's config applies to its logit; InvalidOptionError for one onnxpipe does not
    know (the folder's author chose a custom torch function)."""
    path = (config.get("sentence_transformers") or {}).get("activation_fn") or config.get("sbert_ce_default_activation_function")
    if path is None:
        return ACTIVATIONS["Sigmoid"]  # ACTIVATIONS: sentence-transformers' modules, by torch class name
    name = str(path).rsplit(".", 1)[-1]
    if name not in ACTIVATIONS:
        raise InvalidOptionError(
            f"the model's config names the activation {path!r}, which onnxpipe does not implement (it knows "
            f"{', '.join(sorted(ACTIVATIONS))}); pass raw_scores=True to get the logits."
        )
    return ACTIVATIONS[name]


class TextRankingPipeline(TextPipeline):
    """Rank documents against a query: `ranker(query, documents, top_k=None, return_documents=False)`, or a
    `{"query", "documents"}` dict, or a list of such dicts (one ranking each)."""

    OPTIONS = {"top_k": None, "return_documents": False, "raw_scores": False, "batch_size": 32, **TOKENIZER_OPTIONS}

    def setup(self) -> None:
        super().setup()
        config = self.folder.config
        labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 1))
        if labels != 1:
            raise InvalidOptionError(
                f"text-ranking needs a cross-encoder with one output score; {self.folder.path} has {labels} labels. "
                "Use pipeline('text-classification', model=...) for the scores of every label."
            )
        self.activation = activation_of(config)
        self.logits_name = self.session.output_named("logits")

    def validate_options(self, options: dict[str, Any]) -> None:
        check_tokenizer_options(options)
        check_top_k(options["top_k"], "all documents")
        for name in ("return_documents", "raw_scores"):
            check_bool(name, options[name], must="must be True or False")

    def call_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """`ranker(query, documents, **options)`, `ranker(query=..., documents=...)`, or one positional input
        (a {"query", "documents"} dict or a list of them)."""
        if "query" in kwargs or "documents" in kwargs or len(args) == 2:
            if len(args) > 2 or (len(args) == 2 and ("query" in kwargs or "documents" in kwargs)):
                raise TypeError("text-ranking takes (query, documents) once: positionally or as keywords.")
            named = dict(zip(("query", "documents"), args))
            named.update({k: kwargs.pop(k) for k in ("query", "documents") if k in kwargs})
            if set(named) != {"query", "documents"}:
                raise TypeError(f"text-ranking needs both query and documents; got only {sorted(named)}.")
            return named, kwargs
        if len(args) != 1:
            raise TypeError("text-ranking takes (query, documents), or one {'query', 'documents'} dict or a list of them.")
        return args[0], kwargs

    def split_inputs(self, inputs: Any) -> tuple[list[Any], bool]:
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise InvalidInputError("text-ranking got an empty list; pass {'query': str, 'documents': [str, ...]}.")
            return list(inputs), False
        return [inputs], True

    def check_item(self, item: Any) -> tuple[str, list[str]]:
        if not isinstance(item, Mapping) or set(item) != {"query", "documents"}:
            shown = sorted(item) if isinstance(item, Mapping) else type(item).__name__
            raise InvalidInputError(f"text-ranking takes {{'query': str, 'documents': [str, ...]}}; got {shown}.")
        query, documents = item["query"], item["documents"]
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a string, got {type(query).__name__}: {query!r:.80}.")
        if isinstance(documents, str) or not isinstance(documents, (list, tuple)):
            raise InvalidInputError(f"documents must be a list of strings, got {type(documents).__name__}: {documents!r:.80}.")
        if not documents:
            raise InvalidInputError("documents is empty: pass at least one document to rank.")
        for index, document in enumerate(documents):
            if not isinstance(document, str):
                raise InvalidInputError(f"documents[{index}] must be a string, got {type(document).__name__}: {document!r:.80}.")
        return query, list(documents)

    def run_items(self, items: list[tuple[str, list[str]]], options: dict[str, Any]) -> list[Any]:
        """Every (query, document) pair of the call in one length-sorted batching pass, then one ranking per item."""
        queries = [query for query, documents in items for _ in documents]
        documents = [document for _, docs in items for document in docs]
        self.limits.check_inputs(len(documents))
        pieces = self.encoder.tokenize(queries, documents, options["truncation"], options["max_length"])
        scores = self.run_pieces(pieces, options)
        rankings, start = [], 0
        for _, docs in items:
            rankings.append(self.ranking(scores[start : start + len(docs)], docs, options))
            start += len(docs)
        return rankings

    def collate(self, pieces: list[Any], options: dict[str, Any]) -> EncodedBatch:
        return self.encoder.pad(pieces)

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: EncodedBatch, row: int, options: dict[str, Any]) -> float:
        logit = outputs[self.logits_name][row].astype(np.float32).reshape(-1)[:1]
        return float(logit[0] if options["raw_scores"] else self.activation(logit)[0])

    @staticmethod
    def ranking(scores: list[float], documents: list[str], options: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Documents best first (ties keep their order), cut to top_k, with their text when asked for."""
        order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
        top_k: Optional[int] = options["top_k"]
        if top_k is not None:
            order = order[:top_k]
        if options["return_documents"]:
            return [{"corpus_id": i, "score": scores[i], "text": documents[i]} for i in order]
        return [{"corpus_id": i, "score": scores[i]} for i in order]
