"""feature-extraction: token embeddings exactly as transformers returns them, plus sentence pooling.

`pooling="none"` (default) gives transformers' nested list [1][tokens][hidden] per input; `pooling="folder"` gives
the sentence embedding a sentence-transformers folder defines (its Pooling, Dense and Normalize modules, prompts and
max_seq_length: `SentenceTransformer(folder).encode`); `pooling="mean"`, `"cls"`, `"max"`, `"lasttoken"`,
`"weightedmean"` or `"mean_sqrt_len_tokens"` pools the token vectors that way and nothing more. `normalize=True`
L2-normalizes a pooled vector.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from onnxpipe.errors import InvalidOptionError
from onnxpipe.options import check_bool, check_choice
from onnxpipe.tasks.text_base import TOKENIZER_OPTIONS, TextPipeline, check_tokenizer_options
from onnxpipe.text.pooling import pool, sentence_embedding
from onnxpipe.text.sentence_transformers_config import POOLING_MODES, l2_normalize, read_sentence_transformers_config
from onnxpipe.text.tokenizer import EncodedBatch

POOLINGS = ("none", "folder", *POOLING_MODES)
# output names of the token embeddings, by exporter: transformers/optimum, sentence-transformers
_HIDDEN_NAMES = ("last_hidden_state", "token_embeddings")
# transformers' special tokens (`all_special_ids`): a prompt's count of tokens leaves out a trailing one
_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class FeatureExtractionPipeline(TextPipeline):
    """Embed texts; options: return_tensors, pooling, normalize, prompt_name, prompt, truncation, batch_size."""

    OPTIONS = {
        "return_tensors": False, "pooling": "none", "normalize": False, "prompt_name": None, "prompt": None,
        "tokenize_kwargs": None, **TOKENIZER_OPTIONS,
    }

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        names = self.session.output_names
        self.hidden_name = next((n for n in _HIDDEN_NAMES if n in names), names[0])

    def setup(self) -> None:
        super().setup()
        #: the folder's sentence-transformers configuration (sentence-transformers' defaults where it has none)
        self.sentence_config = read_sentence_transformers_config(self.folder)
        names = [self.encoder.special_token(name) for name in _SPECIAL_TOKENS]
        for source in (self.folder.read_json("tokenizer_config.json"), self.folder.read_json("special_tokens_map.json")):
            extra = source.get("additional_special_tokens") or []
            names += [t.get("content") if isinstance(t, dict) else t for t in extra if isinstance(t, (str, dict))]
        ids = (self.encoder.tokenizer.token_to_id(name) for name in names if isinstance(name, str))
        self.special_ids = frozenset(i for i in ids if i is not None)

    def validate_options(self, options: dict[str, Any]) -> None:
        tokenize_kwargs = options.pop("tokenize_kwargs", None) or {}
        unknown = set(tokenize_kwargs) - set(TOKENIZER_OPTIONS)
        if unknown:
            raise InvalidOptionError(f"tokenize_kwargs takes {sorted(TOKENIZER_OPTIONS)}; got {sorted(unknown)}.")
        options.update(tokenize_kwargs)
        options["tokenize_kwargs"] = None
        check_tokenizer_options(options)
        check_choice("pooling", options["pooling"], POOLINGS)
        check_bool("normalize", options["normalize"])
        check_bool("return_tensors", options["return_tensors"])
        if options["normalize"] and options["pooling"] == "none":
            raise InvalidOptionError(
                "normalize=True needs a sentence vector: pass pooling='folder' (the model's own sentence embedding) "
                "or a pooling mode such as pooling='mean'."
            )
        if options["pooling"] == "folder":
            self.sentence_config.check_usable()
        self.sentence_config.resolve_prompt(options["prompt"], options["prompt_name"], False)

    def encode(self, sentences: Union[str, Sequence[str]], prompt_name: Optional[str] = None, prompt: Optional[str] = None,
               normalize_embeddings: bool = False, **options: Any) -> np.ndarray:
        """`SentenceTransformer.encode` on this folder: its sentence embeddings (pooling="folder") as one float32
        array, (dim,) for a string and (n, dim) for a list; other options (batch_size, truncation...) as in a call."""
        vectors = self(sentences, pooling="folder", normalize=normalize_embeddings, prompt_name=prompt_name,
                       prompt=prompt, return_tensors=True, **options)
        return vectors if isinstance(sentences, str) else np.stack(vectors)

    def run_items(self, items: Sequence[Any], options: dict[str, Any]) -> list[Any]:
        folder = options["pooling"] == "folder"
        config = self.sentence_config
        prompt = config.resolve_prompt(options["prompt"], options["prompt_name"], use_default=folder) or ""
        limit = options["max_length"]
        if folder and limit is None and config.max_seq_length is not None:  # sentence_bert_config.json, within the model's limit
            limit = min(config.max_seq_length, self.encoder.model_max_length or config.max_seq_length)
        prompt_tokens = self.prompt_token_count(prompt, limit) if folder and prompt and not config.include_prompt else 0
        call = {**options, "max_length": limit, "prompt_text": prompt, "prompt_tokens": prompt_tokens,
                "lowercase": folder and config.do_lower_case}
        return super().run_items(items, call)

    def prompt_token_count(self, prompt: str, limit: Optional[int]) -> int:
        """Tokens of `prompt` tokenized alone (special tokens included), less a trailing special token: the count
        sentence-transformers leaves out of pooling when the folder's Pooling says include_prompt=false."""
        if limit is None:
            limit = self.encoder.model_max_length
        ids = self.encoder.configured(limit).encode(prompt).ids
        return len(ids) - 1 if ids and ids[-1] in self.special_ids else len(ids)

    def prepare(self, items: list[str], options: dict[str, Any]) -> list:
        texts = [options.get("prompt_text", "") + text for text in items]
        if options.get("lowercase"):  # sentence_bert_config.json's do_lower_case: a Lowercase normalizer in front
            texts = [text.lower() for text in texts]
        return self.encoder.tokenize(texts, None, options["truncation"], options["max_length"])

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: EncodedBatch, row: int, options: dict[str, Any]) -> Any:
        mask = encoded.attention_mask[row].astype(bool)
        # drop padding, as an unbatched run has none; masking already copied, so fp32 outputs need no second copy
        hidden = outputs[self.hidden_name][row][mask].astype(np.float32, copy=False)
        pooling = options["pooling"]
        if pooling == "none":
            tokens = hidden[None]
            return tokens if options["return_tensors"] else tokens.tolist()
        if pooling == "folder":
            vector = sentence_embedding(hidden, self.sentence_config, options.get("prompt_tokens", 0))
        else:
            vector = pool(hidden, (pooling,))
        if options["normalize"]:
            vector = l2_normalize(vector)
        return vector if options["return_tensors"] else vector.tolist()
