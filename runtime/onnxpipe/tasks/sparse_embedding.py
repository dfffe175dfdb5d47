"""sparse-embedding: SPLADE sparse vectors from a masked-LM graph (a fill-mask export), as sentence-transformers'
`SparseEncoder(folder).encode` computes them: `log(1 + relu(logits))` max-pooled (or summed, as the folder's
SpladePooling says) over each input's real tokens.

No transformers pipeline exists for this; the name is onnxpipe's. Each input gives `{"indices": [...], "values":
[...]}` over the vocabulary, non-zero entries only, by ascending index (`return_tokens=True` adds the tokens'
texts). Options: top_k (keep the k largest values: SparseEncoder's max_active_dims), return_dense (the
vocabulary-wide float32 vector instead), prompt_name / prompt (config_sentence_transformers.json), truncation,
max_length, batch_size.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from onnxpipe.errors import InvalidOptionError
from onnxpipe.options import check_bool, check_int
from onnxpipe.tasks.text_base import TOKENIZER_OPTIONS, TextPipeline, check_tokenizer_options
from onnxpipe.text.sentence_transformers_config import read_sentence_transformers_config
from onnxpipe.text.splade import read_splade_config, sparse_of, splade_vector, top_dims
from onnxpipe.text.tokenizer import EncodedBatch


def masked_lm_logits(pipe: TextPipeline) -> str:
    """The name of the graph's (batch, tokens, vocabulary) logits output; InvalidOptionError naming the fix when the
    graph has no masked-LM head (a base model, a classifier)."""
    shapes = pipe.session.output_shapes
    vocab = pipe.folder.config.get("vocab_size")
    shape = list(shapes.get("logits", ()))
    if len(shape) == 3 and (not isinstance(shape[-1], int) or vocab is None or shape[-1] == vocab):
        return "logits"
    outputs = ", ".join(f"{name} {list(dims)}" for name, dims in shapes.items())
    raise InvalidOptionError(
        f"{pipe.task} needs a masked-LM head (logits over the vocabulary per token), and {pipe.model_path} has none "
        f"(outputs: {outputs}). Export a *ForMaskedLM checkpoint (a SPLADE model) with "
        f"`onnxpipe export CHECKPOINT --task {pipe.task}`."
    )


class SparseEmbeddingPipeline(TextPipeline):
    """SPLADE sparse vectors; options: top_k, return_dense, return_tokens, prompt_name, prompt, truncation."""

    OPTIONS = {"top_k": None, "return_dense": False, "return_tokens": False, "prompt_name": None, "prompt": None,
               **TOKENIZER_OPTIONS}

    def setup(self) -> None:
        super().setup()
        self.logits_name = masked_lm_logits(self)
        self.splade = read_splade_config(self.folder)
        if self.splade.problem:
            raise InvalidOptionError(self.splade.problem)
        #: prompts, max_seq_length and do_lower_case of a sentence-transformers folder (its defaults elsewhere)
        self.sentence_config = read_sentence_transformers_config(self.folder)

    def validate_options(self, options: dict[str, Any]) -> None:
        check_tokenizer_options(options)
        check_int("top_k", options["top_k"], optional=True, must="must be a positive int (the most non-zero values kept) or None")
        check_bool("return_dense", options["return_dense"])
        check_bool("return_tokens", options["return_tokens"])
        if options["return_dense"] and options["return_tokens"]:
            raise InvalidOptionError("return_tokens=True names the non-zero entries of {indices, values}; it does not go with return_dense=True.")
        self.sentence_config.resolve_prompt(options["prompt"], options["prompt_name"], False)

    def encode(self, sentences: Union[str, Sequence[str]], prompt_name: Optional[str] = None, prompt: Optional[str] = None,
               max_active_dims: Optional[int] = None, **options: Any) -> np.ndarray:
        """`SparseEncoder.encode(..., convert_to_sparse_tensor=False)` on this folder: float32 vectors over the
        vocabulary, (vocab,) for a string and (n, vocab) for a list."""
        vectors = self(sentences, prompt_name=prompt_name, prompt=prompt, top_k=max_active_dims, return_dense=True, **options)
        return vectors if isinstance(sentences, str) else np.stack(vectors)

    def run_items(self, items: Sequence[Any], options: dict[str, Any]) -> list[Any]:
        config = self.sentence_config
        prompt = config.resolve_prompt(options["prompt"], options["prompt_name"], use_default=True) or ""
        limit = options["max_length"]
        if limit is None and config.max_seq_length is not None:
            limit = min(config.max_seq_length, self.encoder.model_max_length or config.max_seq_length)
        texts = [prompt + text for text in items]
        if config.do_lower_case:
            texts = [text.lower() for text in texts]
        return super().run_items(texts, {**options, "max_length": limit})

    def prepare(self, items: list[str], options: dict[str, Any]) -> list:
        return self.encoder.tokenize(items, None, options["truncation"], options["max_length"])

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: EncodedBatch, row: int, options: dict[str, Any]) -> Any:
        mask = encoded.attention_mask[row].astype(bool)
        vector = top_dims(splade_vector(outputs[self.logits_name][row][mask], self.splade), options["top_k"])
        if options["return_dense"]:
            return vector
        sparse = sparse_of(vector)
        if options["return_tokens"]:
            sparse["tokens"] = [self.encoder.tokenizer.id_to_token(i) for i in sparse["indices"]]
        return sparse
