"""image-to-text: captions (ViT + GPT-2) and printed-text reading (TrOCR) with VisionEncoderDecoder models, and
captioning Pix2Struct models, as transformers 4.57's ImageToTextPipeline.

The encoder (`encoder_model.onnx`, pixel_values -> hidden states) runs once per batch of images; the merged decoder
generates from the decoder start token with the shared generation loop (greedy, sampling, beam search, streamers).
Each image gives a list of `num_return_sequences` records `{"generated_text"}` (a list of images: a list of those).
Options as transformers takes them: `max_new_tokens`, `generate_kwargs` (any generation option; onnxpipe also takes
them directly), `timeout`, and `prompt`, which VisionEncoderDecoder models refuse (as transformers does). Defaults as
transformers: 256 new tokens where the model's generation_config.json keeps the library defaults.

Pix2Struct's encoder takes `flattened_patches` + `attention_mask` from vision/pix2struct.py (the mask is fed to the
decoder as its encoder_attention_mask); `prompt` is refused for it too (transformers ignores it on captioning
checkpoints and renders it with a font from the hub on VQA ones, which are refused at load).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.cancellation import raise_if_cancelled
from onnxpipe.errors import InvalidInputError, InvalidOptionError, MissingModelFileError
from onnxpipe.generation.config import GenerationConfig
from onnxpipe.generation.generate import generate, generation_lengths
from onnxpipe.generation.io_binding import ENCODER_HIDDEN
from onnxpipe.generation.onnx_decoder import CacheState
from onnxpipe.generation.onnx_seq2seq import ENCODER_MASK, OnnxSeq2Seq
from onnxpipe.session import OnnxSession
from onnxpipe.tasks.generation_base import GenerationPipeline, position_limit
from onnxpipe.tasks.image_base import IMAGE_OPTIONS, ImagePipeline
from onnxpipe.vision.images import load_image
from onnxpipe.vision.pix2struct import Pix2StructProcessor

EXPORT_HINT = "Export the checkpoint with `onnxpipe export CHECKPOINT --task image-to-text`."
PIX2STRUCT = "pix2struct"


@dataclass(frozen=True)
class PatchPiece:
    """One image through Pix2Struct's processor: flattened_patches (max_patches, D) and its attention_mask."""

    pixel_values: np.ndarray
    attention_mask: np.ndarray


class EncodedImages:
    """The Decoder protocol over images already encoded: `prepare` takes each row's image index in column 0 of
    `input_ids` (generate() takes integer ids; the pixels went through the encoder once)."""

    is_encoder_decoder = True

    def __init__(self, seq2seq: OnnxSeq2Seq, hidden: np.ndarray, encoder_mask: Optional[np.ndarray] = None):
        self.seq2seq = seq2seq
        self.hidden = hidden
        self.encoder_mask = encoder_mask  # Pix2Struct's patch mask, fed to its decoder

    def prepare(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> CacheState:
        rows = np.asarray(input_ids)[:, 0]
        hidden = self.hidden[rows]
        if self.seq2seq.runner is not None:
            hidden = self.seq2seq.runner.to_device(hidden)
        encoder = {ENCODER_HIDDEN: hidden}
        if self.encoder_mask is not None:
            encoder[ENCODER_MASK] = self.encoder_mask[rows]
        return CacheState(batch=hidden.shape[0], encoder=encoder)

    def step(self, state: CacheState, tokens: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, CacheState]:
        return self.seq2seq.step(state, tokens, attention_mask)

    def select(self, state: CacheState, rows: np.ndarray) -> CacheState:
        return self.seq2seq.select(state, rows)


class ImageToTextPipeline(GenerationPipeline, ImagePipeline):
    """Generate text from images with a VisionEncoderDecoder or Pix2Struct export (encoder_model +
    decoder_model_merged)."""

    PIPELINE_DEFAULTS = {"max_new_tokens": 256}
    TASK_OPTIONS = {"prompt": None, **IMAGE_OPTIONS}

    # -- loading -------------------------------------------------------------------------------
    def load_decoder(self, dtype: Optional[str]) -> OnnxSeq2Seq:
        missing = f"{self.folder.path} has no encoder_model.onnx + decoder_model_merged.onnx for image-to-text. {EXPORT_HINT}"
        return self.open_seq2seq(dtype, missing, check_encoder=self.check_encoder)

    def check_encoder(self, encoder: OnnxSession) -> None:
        """Refuse an encoder that does not take this model family's image input (another task's folder)."""
        wanted = "flattened_patches" if self.is_pix2struct else "pixel_values"
        if wanted not in encoder.inputs:
            raise MissingModelFileError(
                f"{encoder.path.name} takes {list(encoder.inputs)}, not {wanted}: image-to-text runs "
                f"VisionEncoderDecoder models (ViT + GPT-2, TrOCR) and Pix2Struct captioners, and this is a "
                f"{self.folder.config.get('model_type')!r} folder. {EXPORT_HINT}"
            )

    @property
    def is_pix2struct(self) -> bool:
        return self.folder.config.get("model_type") == PIX2STRUCT

    def load_processor(self) -> Any:
        """Pix2Struct's patch processor for Pix2Struct folders, the folder's image processor otherwise."""
        if not self.is_pix2struct:
            return super().load_processor()
        return Pix2StructProcessor.from_config(
            self.folder.read_json("preprocessor_config.json"), str(self.folder.path / "preprocessor_config.json")
        )

    def setup(self) -> None:
        super().setup()
        # the decoder's own position table bounds the caption (the top-level config has none; Pix2Struct's
        # relative positions have no bound)
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
        if prompt is not None and self.is_pix2struct:
            raise InvalidOptionError(
                f"prompt={prompt!r}: a captioning Pix2Struct model reads the image alone (transformers ignores the "
                "prompt for it; only VQA checkpoints render it onto the image, with a font downloaded from the hub, "
                "which onnxpipe does not do): remove prompt."
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
        pieces = self.prepare_patches(items, options) if self.is_pix2struct else self.prepare(items, options)
        results: list[Any] = [None] * len(pieces)
        size = options["batch_size"]
        for group in self.batch_groups(pieces):
            for start in range(0, len(group), size):
                raise_if_cancelled()
                chunk = group[start : start + size]
                pixel_values = np.stack([pieces[i].pixel_values for i in chunk]).astype(np.float32, copy=False)
                mask = np.stack([pieces[i].attention_mask for i in chunk]) if self.is_pix2struct else None
                sequences = self._generate(pixel_values, mask, config, options["streamer"])
                per_image = sequences.reshape(len(chunk), -1, sequences.shape[-1])
                for index, rows in zip(chunk, per_image):
                    results[index] = [{"generated_text": self._text(row)} for row in rows]
        return results

    def prepare_patches(self, items: Sequence[Any], options: dict[str, Any]) -> list[PatchPiece]:
        """Pix2Struct: each image's flattened patches and mask (all the same shape: one batch group)."""
        pieces = []
        for item in items:
            encoded = self.processor.preprocess(load_image(item, options["timeout"], self.media_sources, self.limits))
            pieces.append(PatchPiece(encoded["flattened_patches"], encoded["attention_mask"]))
        return pieces

    def _generate(
        self, pixel_values: np.ndarray, mask: Optional[np.ndarray], config: GenerationConfig, streamer: Any
    ) -> np.ndarray:
        encoder = self.decoder.encoder
        feeds = {"pixel_values": pixel_values} if mask is None else {"flattened_patches": pixel_values, "attention_mask": mask}
        hidden = encoder.run(feeds, [self.decoder.hidden_name])[self.decoder.hidden_name]
        rows = np.arange(len(pixel_values), dtype=np.int64)[:, None]
        encoder_mask = None if mask is None else mask.astype(np.int64)
        return generate(
            EncodedImages(self.decoder, hidden, encoder_mask), rows, np.ones_like(rows), config, streamer=streamer,
            decode=self.raw_decode,
        )

    def _text(self, ids: np.ndarray) -> str:
        return self.decode(ids, skip_special_tokens=True, clean_up=self.encoder.clean_up_spaces)

