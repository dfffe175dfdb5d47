"""text2text-generation: encoder-decoder generation (T5, BART, Marian ...) as transformers' pipeline does it.

Each input gives `num_return_sequences` records `{"generated_text"}` (`{"generated_token_ids"}` with
return_tensors=True); a list of strings with one record each gives a flat list, as in transformers.
Defaults as transformers: 4 beams and 256 new tokens where the model's generation config leaves the
library defaults. summarization and translation subclass this with their own output key and checks.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.generation.config import GenerationConfig
from onnxpipe.generation.generate import generate, generation_lengths
from onnxpipe.generation.onnx_seq2seq import OnnxSeq2Seq
from onnxpipe.options import check_bool
from onnxpipe.tasks.generation_base import GenerationPipeline


class Text2TextGenerationPipeline(GenerationPipeline):
    """Generate text from text with an encoder-decoder model."""

    PIPELINE_DEFAULTS = {"max_new_tokens": 256, "num_beams": 4}
    TASK_OPTIONS = {"return_tensors": None, "return_text": None, "clean_up_tokenization_spaces": False,
                    "truncation": None, "stop_sequence": None}
    RETURN_NAME = "generated"

    def load_decoder(self, dtype: Optional[str]) -> OnnxSeq2Seq:
        return self.open_seq2seq(dtype)

    def setup(self) -> None:
        super().setup()
        params = (self.folder.config.get("task_specific_params") or {}).get(self.task) or {}
        self.prefix = params.get("prefix", self.folder.config.get("prefix")) or ""

    def validate_options(self, options: dict[str, Any]) -> None:
        super().validate_options(options)
        for name in ("return_tensors", "return_text", "truncation"):
            check_bool(name, options[name], optional=True)
        if options["return_text"] is False and not options["return_tensors"]:
            raise InvalidOptionError("return_text=False returns nothing; pass return_tensors=True for token ids.")
        check_bool("clean_up_tokenization_spaces", options["clean_up_tokenization_spaces"])
        stop = options["stop_sequence"]
        if stop is not None and (not isinstance(stop, str) or not stop):
            raise InvalidOptionError(f"stop_sequence must be a non-empty string, got {stop!r}.")

    # -- calling -------------------------------------------------------------------------------
    def shape_results(self, results: list[Any], single: bool, inputs: Any, given: Mapping[str, Any]) -> Any:
        """One text gives a list of records; a list of texts a list with one record (or a list of records) each."""
        if single:
            return results[0]
        return [r[0] for r in results] if all(len(r) == 1 for r in results) else results

    def check_item(self, item: Any) -> str:
        if not isinstance(item, str):
            raise InvalidInputError(f"{self.task} takes a string or a list of strings; got {type(item).__name__}: {item!r:.80}.")
        if not item:
            raise InvalidInputError(f"{self.task} got an empty string; give text to process.")
        return item

    def check_inputs(self, input_length: int, config: GenerationConfig) -> None:
        """Task-specific warnings about lengths (summarization, translation)."""

    def run_items(self, items: Sequence[str], options: dict[str, Any]) -> list[Any]:
        extra: dict[str, Any] = {}
        if options["stop_sequence"] is not None:
            ids = self.encode([options["stop_sequence"]], add_special_tokens=False)[0]
            if len(ids) > 1:
                warnings.warn(
                    "Stopping on a multiple token sequence is not yet supported on transformers. The first token of "
                    "the stop sequence will be used as the stop sequence string in the interim.",
                    UserWarning, stacklevel=3,
                )
            extra["eos_token_id"] = ids[0]
        config = self.resolve(options, extra)
        limit = self.encoder.model_max_length if options["truncation"] else None
        rows = self.encode([self.prefix + text for text in items], limit=limit)
        self.check_positions(
            max(len(r) for r in rows), generation_lengths(config, 1)[0], "input",
            "Shorten the input or pass truncation=True.",
        )
        pad_id = self.tokenizer_pad_id()
        if pad_id is None and len(items) > 1 and options["batch_size"] > 1:
            raise InvalidInputError("The tokenizer has no pad token, so inputs cannot be batched: use batch_size=1.")
        results: list[Any] = []
        size = options["batch_size"]
        for start in range(0, len(items), size):
            input_ids, mask = self.pad_batch(rows[start : start + size], self.encoder.padding_side, pad_id or 0)
            self.check_inputs(input_ids.shape[1], config)
            sequences = generate(
                self.decoder, input_ids, mask, config, streamer=options["streamer"], decode=self.raw_decode
            )
            per_input = sequences.reshape(input_ids.shape[0], -1, sequences.shape[-1])
            results.extend(self._records(seqs, options) for seqs in per_input)
        return results

    def _records(self, sequences: np.ndarray, options: dict[str, Any]) -> list[dict[str, Any]]:
        if options["return_tensors"]:
            return [{f"{self.RETURN_NAME}_token_ids": [int(t) for t in seq]} for seq in sequences]
        clean = options["clean_up_tokenization_spaces"]
        return [{f"{self.RETURN_NAME}_text": self.decode(seq, skip_special_tokens=True, clean_up=clean)} for seq in sequences]
