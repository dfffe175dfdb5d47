"""image-to-text: captions (ViT + GPT-2) and printed-text reading (TrOCR) with VisionEncoderDecoder models, as
transformers 4.57's ImageToTextPipeline.

The encoder (`encoder_model.onnx`, pixel_values -> hidden states) runs once per batch of images; the merged decoder
generates from the decoder start token with the shared generation loop (greedy, sampling, beam search, streamers).
Each image gives a list of `num_return_sequences` records `{"generated_text"}` (a list of images: a list of those).
Options as transformers takes them: `max_new_tokens`, `generate_kwargs` (any generation option; onnxpipe also takes
them directly), `timeout`, and `prompt`, which VisionEncoderDecoder models refuse (as transformers does). Defaults as
transformers: 256 new tokens where the model's generation_config.json keeps the library defaults.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.cancellation import raise_if_cancelled
from onnxpipe.errors import InvalidInputError, InvalidOptionError, MissingModelFileError
from onnxpipe.generation.config import GenerationConfig
from onnxpipe.generation.generate import generate, generation_lengths
from onnxpipe.generation.io_binding import ENCODER_HIDDEN
from onnxpipe.generation.onnx_decoder import CacheState
from onnxpipe.generation.onnx_seq2seq import OnnxSeq2Seq
from onnxpipe.tasks.generation_base import GenerationPipeline, first_stem, position_limit
from onnxpipe.tasks.image_base import IMAGE_OPTIONS, ImagePipeline

EXPORT_HINT = "Export the checkpoint with `onnxpipe export CHECKPOINT --task image-to-text`."


class EncodedImages:
    """The Decoder protocol over images already encoded: `prepare` takes each row's image index in column 0 of
    `input_ids` (generate() takes integer ids; the pixels went through the encoder once)."""

    is_encoder_decoder = True

    def __init__(self, seq2seq: OnnxSeq2Seq, hidden: np.ndarray):
        self.seq2seq = seq2seq
        self.hidden = hidden

    def prepare(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> CacheState:
        hidden = self.hidden[np.asarray(input_ids)[:, 0]]
        if self.seq2seq.runner is not None:
            hidden = self.seq2seq.runner.to_device(hidden)
        return CacheState(batch=hidden.shape[0], encoder={ENCODER_HIDDEN: hidden})

    def step(self, state: CacheState, tokens: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, CacheState]:
        return self.seq2seq.step(state, tokens, attention_mask)

    def select(self, state: CacheState, rows: np.ndarray) -> CacheState:
        return self.seq2seq.select(state, rows)


class ImageToTextPipeline(GenerationPipeline, ImagePipeline):
    """Generate text from images with a VisionEncoderDecoder export (encoder_model + decoder_model_merged)."""

    PIPELINE_DEFAULTS = {"max_new_tokens": 256}
    TASK_OPTIONS = {"prompt": None, **IMAGE_OPTIONS}

    # -- loading -------------------------------------------------------------------------------
    def load_decoder(self, dtype: Optional[str]) -> OnnxSeq2Seq:
        try:
            stem = first_stem(self.folder, ("decoder_model_merged", "decoder_with_past_model", "decoder_model"))
            encoder_stem = first_stem(self.folder, ("encoder_model",))
        except MissingModelFileError as exc:
            raise MissingModelFileError(
                f"{self.folder.path} has no encoder_model.onnx + decoder_model_merged.onnx for image-to-text. {EXPORT_HINT}"
            ) from exc
        decoder = self.open_session(stem, dtype)
        chosen = dtype or self.folder.default_dtype(self.device_kind, stem)
        encoder = self.open_session(encoder_stem, chosen)
        if "pixel_values" not in encoder.inputs:
            raise MissingModelFileError(
                f"{encoder.path.name} takes {list(encoder.inputs)}, not pixel_values: image-to-text runs "
                f"VisionEncoderDecoder models (ViT + GPT-2, TrOCR), and this is a {self.folder.config.get('model_type')!r} "
                f"folder. {EXPORT_HINT}"
            )
        first = None
        if stem == "decoder_with_past_model":  # optimum's unmerged pair: decoder_model runs the first step
            first = self.open_session(first_stem(self.folder, ("decoder_model",)), chosen)
        self.use_main_session(decoder, stem)
        return OnnxSeq2Seq(encoder, decoder, self.folder.config, first_session=first)

    def setup(self) -> None:
        super().setup()
        # the decoder's own position table bounds the caption (the top-level config has none)
        decoder_config = self.folder.config.get("decoder")
        self.limit = position_limit(decoder_config if isinstance(decoder_config, Mapping) else self.folder.config)

    # -- options -------------------------------------------------------------------------------
    def call_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """`captioner(images, **options)`; transformers' deprecated `images=` too."""
        kwargs = dict(kwargs)
        if "images" in kwargs:
            if args or "inputs" in kwargs:
                raise InvalidInputError("Pass the images once: positionally, as inputs= or as images=.")
            args = (kwargs.pop("images"),)
        if not args and "inputs" not in kwargs:
            raise InvalidInputError("Cannot call the image-to-text pipeline without an image: captioner(image, ...).")
        inputs, options = super().call_arguments(args, kwargs)
        if inputs is None:
            raise InvalidInputError("Cannot call the image-to-text pipeline without an image: got None.")
        return inputs, options

    def check_options(self, options: Mapping[str, Any], base: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """transformers' `generate_kwargs={...}` is unpacked first (keyword arguments given beside it win)."""
        options = dict(options)
        nested = options.pop("generate_kwargs", None)
        if nested is not None:
            if not isinstance(nested, Mapping):
                raise InvalidOptionError(f"generate_kwargs must be a dict of generation options, got {nested!r}.")
            if "max_new_tokens" in nested and options.get("max_new_tokens") is not None:
                raise InvalidOptionError(
                    "`max_new_tokens` is defined both as an argument and inside `generate_kwargs` argument, please use "
                    "only 1 version"
                )
            misplaced = sorted(set(nested) & (set(self.TASK_OPTIONS) | set(self.COMMON_OPTIONS)))
            if misplaced:
                raise InvalidOptionError(
                    f"{misplaced} in generate_kwargs are pipeline options, not generation options: pass them to the call."
                )
            options = {**nested, **options}
        merged = super().check_options(options, base)
        # decoded as transformers' tokenizer.decode does by default (the streamer reads it too)
        merged["clean_up_tokenization_spaces"] = self.encoder.clean_up_spaces
        return merged

    def validate_options(self, options: dict[str, Any]) -> None:
        super().validate_options(options)
        self.validate_image_options(options)
        prompt = options["prompt"]
        if prompt is not None and not isinstance(prompt, str):
            raise InvalidOptionError(
                f"prompt must be a single string, got {type(prompt).__name__}; and VisionEncoderDecoder models take "
                "no prompt anyway: remove it."
            )
        if prompt is not None:
            raise InvalidOptionError(
                f"prompt={prompt!r}: model type vision-encoder-decoder does not support conditional text generation "
                "(transformers raises the same); it reads the image alone: remove prompt."
            )

    # -- calling -------------------------------------------------------------------------------
    def check_item(self, item: Any) -> Any:
        if item is None:
            raise InvalidInputError("An image is None; pass a path, URL, PIL image, numpy array or bytes.")
        return item

    def run_items(self, items: Sequence[Any], options: dict[str, Any]) -> list[Any]:
        """Preprocess every image, then per batch of same-size images: encode once and generate."""
        config = self.resolve(options)
        self.check_positions(
            1, generation_lengths(config, 1)[0], "decoder start token", "Lower max_new_tokens (or max_length)."
        )
        pieces = self.prepare(items, options)
        results: list[Any] = [None] * len(pieces)
        size = options["batch_size"]
        for group in self.batch_groups(pieces):
            for start in range(0, len(group), size):
                raise_if_cancelled()
                chunk = group[start : start + size]
                pixel_values = np.stack([pieces[i].pixel_values for i in chunk]).astype(np.float32, copy=False)
                sequences = self._generate(pixel_values, config, options["streamer"])
                per_image = sequences.reshape(len(chunk), -1, sequences.shape[-1])
                for index, rows in zip(chunk, per_image):
                    results[index] = [{"generated_text": self._text(row)} for row in rows]
        return results

    def _generate(self, pixel_values: np.ndarray, config: GenerationConfig, streamer: Any) -> np.ndarray:
        encoder = self.decoder.encoder
        hidden = encoder.run({"pixel_values": pixel_values}, [self.decoder.hidden_name])[self.decoder.hidden_name]
        rows = np.arange(len(pixel_values), dtype=np.int64)[:, None]
        return generate(
            EncodedImages(self.decoder, hidden), rows, np.ones_like(rows), config, streamer=streamer, decode=self.raw_decode
        )

    def _text(self, ids: np.ndarray) -> str:
        return self.decode(ids, skip_special_tokens=True, clean_up=self.encoder.clean_up_spaces)

