"""fill-mask: predict the masked token(s) of a text, returning transformers' {score, token, token_str, sequence}.

One mask gives a list of predictions; several masks in one text give a list per mask (transformers' nested
output), and their `sequence` keeps special tokens so the other masks stay visible, as transformers does.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.maths import softmax
from onnxpipe.options import check_int
from onnxpipe.tasks.text_base import TOKENIZER_OPTIONS, TextPipeline, best_indices, check_tokenizer_options
from onnxpipe.text.tokenizer import EncodedBatch, TextEncoder

# transformers' truncation strategy names that mean something for a single text
_TRUNCATION_NAMES = {"longest_first": True, "only_first": True, "do_not_truncate": False}
_TARGETS_CACHE = 256  # resolved targets lists kept per pipeline


def find_mask_token(encoder: TextEncoder) -> Optional[str]:
    """The model's mask token: tokenizer_config.json, then special_tokens_map.json, then a special added token
    of tokenizer.json whose text contains "mask" (`[MASK]` for BERT, `<mask>` for RoBERTa / XLM-R)."""
    token = encoder.special_token("mask_token")
    if token:
        return token
    for added in encoder.tokenizer.get_added_tokens_decoder().values():
        if added.special and "mask" in added.content.lower():
            return added.content
    return None


class FillMaskPipeline(TextPipeline):
    """Fill masked tokens; options as in transformers: top_k, targets, tokenizer_kwargs, batch_size."""

    OPTIONS = {"top_k": 5, "targets": None, "tokenizer_kwargs": None, **TOKENIZER_OPTIONS}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        tokenizer = self.encoder.tokenizer
        self.mask_token = find_mask_token(self.encoder)
        self.mask_id = tokenizer.token_to_id(self.mask_token) if self.mask_token else None
        if self.mask_id is None:
            raise InvalidOptionError(
                f"fill-mask needs a tokenizer with a mask token, and {self.folder.path} defines none "
                f"(mask_token {self.mask_token!r} in tokenizer_config.json / special_tokens_map.json / tokenizer.json). "
                "Export a masked-language model (e.g. *ForMaskedLM) with its tokenizer."
            )
        # transformers drops the pad id from `sequence`; with no pad token it drops nothing
        self.pad_token_id = tokenizer.token_to_id(self.encoder.pad_token) if self.encoder.pad_token else None
        self.logits_name = self.session.output_named("logits")
        self._targets: dict[tuple, Optional[np.ndarray]] = {}
        self._targets_lock = threading.Lock()
        self.target_ids(self.defaults["targets"])  # pipeline-level targets: errors and warnings now, as transformers

    def check_item(self, item: Any) -> str:
        if not isinstance(item, str):
            raise InvalidInputError(
                f"fill-mask takes a string containing {self.mask_token} or a list of such strings; "
                f"got {type(item).__name__}: {item!r:.80}."
            )
        return item

    def shape_results(self, results: list[Any], single: bool, inputs: Any, given: Mapping[str, Any]) -> Any:
        """transformers unwraps a single string and a one-item list alike."""
        return results[0] if len(results) == 1 else results

    def run_items(self, items: Sequence[str], options: dict[str, Any]) -> list[Any]:
        """The predictions of each text; the call's targets are resolved once and ride with every batch."""
        target_ids = self.target_ids(options["targets"], stacklevel=5)
        pieces = self.prepare(items, options)
        return self.run_pieces(pieces, options, lambda batch: MaskBatch.of(self.encoder.pad(batch), target_ids))

    # -- options -------------------------------------------------------------------------------
    def validate_options(self, options: dict[str, Any]) -> None:
        tokenizer_kwargs = options.pop("tokenizer_kwargs", None) or {}
        if not isinstance(tokenizer_kwargs, dict):
            raise InvalidOptionError(f"tokenizer_kwargs must be a dict such as {{'truncation': True}}, got {tokenizer_kwargs!r}.")
        unknown = set(tokenizer_kwargs) - set(TOKENIZER_OPTIONS)
        if unknown:
            raise InvalidOptionError(
                f"fill-mask's tokenizer_kwargs take {sorted(TOKENIZER_OPTIONS)}; {sorted(unknown)} are not implemented."
            )
        options.update(tokenizer_kwargs)
        options["tokenizer_kwargs"] = None
        truncation = options["truncation"]
        if isinstance(truncation, str) and truncation in _TRUNCATION_NAMES:
            options["truncation"] = _TRUNCATION_NAMES[truncation]
        check_tokenizer_options(options)
        if options["top_k"] is None:  # transformers: None means the pipeline's default
            options["top_k"] = getattr(self, "defaults", self.OPTIONS)["top_k"]
        check_int("top_k", options["top_k"], must="must be a positive int (default 5)")
        targets = options["targets"]
        if targets is not None and not isinstance(targets, str) and not (
            isinstance(targets, (list, tuple)) and all(isinstance(t, str) for t in targets)
        ):
            raise InvalidOptionError(f"targets must be a string or a list of strings, got {targets!r:.80}.")

    def target_ids(self, targets: Any, stacklevel: int = 4) -> Optional[np.ndarray]:
        """Token ids of `targets`, as transformers' `get_target_ids`: a vocabulary entry as is, else the first
        piece of its tokenization (with a warning pointing `stacklevel` frames up), skipping targets that tokenize
        to nothing; deduplicated in `set` order. Cached per targets list, so its warnings come once, as for
        pipeline-level targets."""
        if targets is None:
            return None
        key = (targets,) if isinstance(targets, str) else tuple(targets)
        with self._targets_lock:
            if key not in self._targets:
                if len(self._targets) >= _TARGETS_CACHE:
                    self._targets.clear()
                self._targets[key] = self._resolve_targets(key, stacklevel)
            return self._targets[key]

    def _resolve_targets(self, targets: Sequence[str], stacklevel: int) -> np.ndarray:
        tokenizer = self.encoder.tokenizer
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        ids = []
        for target in targets:
            id_ = vocab.get(target)
            if id_ is None:
                pieces = tokenizer.encode(target, add_special_tokens=False).ids
                if not pieces:
                    warnings.warn(
                        f"The specified target token `{target}` does not exist in the model vocabulary. "
                        "We cannot replace it with anything meaningful, ignoring it",
                        UserWarning,
                        stacklevel=stacklevel,
                    )
                    continue
                id_ = pieces[0]
                warnings.warn(
                    f"The specified target token `{target}` does not exist in the model vocabulary. "
                    f"Replacing with `{tokenizer.id_to_token(id_)}`.",
                    UserWarning,
                    stacklevel=stacklevel,
                )
            ids.append(id_)
        ids = list(set(ids))  # transformers' order: the same ids in the same order break score ties alike
        if not ids:
            raise InvalidOptionError(f"targets {list(targets)!r} give no token of the model's vocabulary; pass at least one usable target.")
        return np.array(ids, dtype=np.int64)

    # -- running -------------------------------------------------------------------------------
    def prepare(self, items: list[str], options: dict[str, Any]) -> list:
        encodings = self.encoder.tokenize(items, None, options["truncation"], options["max_length"])
        for text, encoding in zip(items, encodings):
            if self.mask_id not in encoding.ids:
                cut = " (it was cut off by truncation: put the mask earlier or shorten the text)" if (
                    encoding.overflowing and self.mask_token in text
                ) else ""
                raise InvalidInputError(
                    f"No mask_token ({self.mask_token}) found on the input {text!r:.80}{cut}. "
                    f"Write {self.mask_token} where the token to predict goes, e.g. 'Paris is the {self.mask_token} of France.'"
                )
        return encodings

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: MaskBatch, row: int, options: dict[str, Any]) -> Any:
        real = encoded.attention_mask[row].astype(bool)  # this input's own tokens, wherever the padding is
        ids = encoded.input_ids[row][real]
        positions = np.flatnonzero(ids == self.mask_id)
        # only the masked rows of the (tokens x vocabulary) logits: copying them all cost some 10 ms per call
        probs = softmax(outputs[self.logits_name][row, np.flatnonzero(real)[positions]].astype(np.float32))
        target_ids = encoded.target_ids
        if target_ids is not None:
            probs = probs[:, target_ids]
        top_k = min(options["top_k"], probs.shape[-1])  # transformers caps top_k at the number of targets
        single = len(positions) == 1
        result = []
        for position, row_probs in zip(positions, probs):
            best = best_indices(row_probs, top_k)
            predictions = []
            for index in best:
                token = int(target_ids[index] if target_ids is not None else index)
                filled = ids.copy()
                filled[position] = token
                if self.pad_token_id is not None:
                    filled = filled[filled != self.pad_token_id]
                predictions.append({
                    "score": float(row_probs[index]),
                    "token": token,
                    "token_str": self.encoder.decode([token]),
                    # one mask: readable text; several: special tokens stay so the other masks show
                    "sequence": self.encoder.decode(filled, skip_special_tokens=single),
                })
            result.append(predictions)
        return result[0] if single else result


@dataclass(frozen=True)
class MaskBatch(EncodedBatch):
    """A padded batch of texts with the call's target token ids (None: the whole vocabulary)."""

    target_ids: Optional[np.ndarray] = None

    @classmethod
    def of(cls, batch: EncodedBatch, target_ids: Optional[np.ndarray]) -> MaskBatch:
        """`batch` with the call's target ids attached."""
        return cls(**{f.name: getattr(batch, f.name) for f in fields(batch)}, target_ids=target_ids)
