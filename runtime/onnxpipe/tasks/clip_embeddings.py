"""CLIP embeddings for text-to-image search: one folder, two graphs, one vector space.

A CLIPModel checkpoint exported for feature-extraction or image-feature-extraction holds `text_model.onnx`
(transformers' CLIPTextModelWithProjection) and `vision_model.onnx` (CLIPVisionModelWithProjection), the layout of
transformers.js CLIP repos. On it `pipeline("feature-extraction")` gives each text's `text_embeds` and
`pipeline("image-feature-extraction")` each image's `image_embeds`: CLIPModel.get_text_features /
get_image_features, what `pipeline()` in transformers returns for those two model classes (output [0], nested
[1][dim] per input). Rank images against captions by the cosine of the two (or pass `normalize=True` and take dot
products). `encode()` on either gives a float32 (n, dim) array, as sentence-transformers' clip models do.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from onnxpipe.errors import InvalidOptionError, MissingModelFileError
from onnxpipe.manifest import dtype_of_filename
from onnxpipe.options import check_bool
from onnxpipe.session import OnnxSession, parse_device
from onnxpipe.tasks.image_feature_extraction import ImageFeatureExtractionPipeline
from onnxpipe.tasks.text_base import TOKENIZER_OPTIONS, TextPipeline, check_tokenizer_options
from onnxpipe.text.sentence_transformers_config import l2_normalize
from onnxpipe.text.tokenizer import EncodedBatch

TEXT_STEM, VISION_STEM = "text_model", "vision_model"
TEXT_POOLINGS = ("none", "folder")  # text_embeds is already the sentence vector: nothing else to pool


def load_tower(pipe: Any, stem: str, dtype: Optional[str], intra_op_num_threads: Optional[int]) -> None:
    """Open the `stem` graph of a CLIP embedding folder as `pipe`'s session (model_path, dtype, session)."""
    device_kind, _ = parse_device(pipe.device)
    try:
        pipe.model_path = pipe.folder.onnx_file(dtype, device_kind, stem=stem)
    except MissingModelFileError as exc:
        raise MissingModelFileError(
            f"{exc} A CLIP folder for {pipe.task} holds text_model.onnx and vision_model.onnx: export the CLIPModel "
            f"checkpoint with `onnxpipe export CHECKPOINT --task {pipe.task} --output DIR`."
        ) from None
    pipe.dtype = dtype_of_filename(pipe.model_path.name, stem)
    pipe.session = OnnxSession(pipe.model_path, pipe.device, intra_op_num_threads)


def _vector(values: np.ndarray, options: dict[str, Any], nested: bool) -> Any:
    """One embedding as a call returns it: normalized on request, [1][dim] (transformers' batch axis) or [dim]."""
    vector = values.astype(np.float32, copy=False)
    if options["normalize"]:
        vector = l2_normalize(vector)
    if nested:
        vector = vector[None]
    return vector if options["return_tensors"] else vector.tolist()


def _stack(vectors: Union[list, np.ndarray], single: bool) -> np.ndarray:
    return np.asarray(vectors, dtype=np.float32) if single else np.stack(vectors).astype(np.float32, copy=False)


class ClipTextEmbeddingPipeline(TextPipeline):
    """Texts to CLIP `text_embeds`; options: normalize, pooling ("none": [1][dim] as transformers, "folder": [dim]),
    return_tensors, truncation, max_length, batch_size."""

    OPTIONS = {"return_tensors": False, "normalize": False, "pooling": "none", **TOKENIZER_OPTIONS}

    def load(self, dtype: Optional[str], intra_op_num_threads: Optional[int]) -> None:
        load_tower(self, TEXT_STEM, dtype, intra_op_num_threads)

    def validate_options(self, options: dict[str, Any]) -> None:
        check_tokenizer_options(options)
        check_bool("return_tensors", options["return_tensors"])
        check_bool("normalize", options["normalize"])
        if options["pooling"] not in TEXT_POOLINGS:
            raise InvalidOptionError(
                f"pooling={options['pooling']!r}: a CLIP text folder gives text_embeds, one projected vector per text "
                "(no token vectors to pool); pass pooling='none' (transformers' [1][dim]) or 'folder' ([dim])."
            )

    def prepare(self, items: list[str], options: dict[str, Any]) -> list:
        return self.encoder.tokenize(items, None, options["truncation"], options["max_length"])

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: EncodedBatch, row: int, options: dict[str, Any]) -> Any:
        return _vector(outputs["text_embeds"][row], options, nested=options["pooling"] == "none")

    def encode(self, sentences: Union[str, Sequence[str]], normalize_embeddings: bool = False, **options: Any) -> np.ndarray:
        """float32 text embeddings, (dim,) for a string and (n, dim) for a list (SentenceTransformer.encode)."""
        vectors = self(sentences, pooling="folder", normalize=normalize_embeddings, return_tensors=True, **options)
        return _stack(vectors, isinstance(sentences, str))


class ClipImageEmbeddingPipeline(ImageFeatureExtractionPipeline):
    """Images to CLIP `image_embeds` ([1][dim] per image, as transformers); options: normalize, return_tensors,
    image_processor_kwargs, timeout, batch_size. `pool=True` is refused as transformers refuses it (no pooler_output)."""

    OPTIONS = {**ImageFeatureExtractionPipeline.OPTIONS, "normalize": False}

    def load(self, dtype: Optional[str], intra_op_num_threads: Optional[int]) -> None:
        load_tower(self, VISION_STEM, dtype, intra_op_num_threads)

    def setup(self) -> None:
        super().setup()
        self.hidden_name, self.pooled_name = "image_embeds", None  # transformers returns output [0]: image_embeds

    def validate_options(self, options: dict[str, Any]) -> None:
        super().validate_options(options)
        check_bool("normalize", options["normalize"])

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: Any, row: int, options: dict[str, Any]) -> Any:
        return _vector(outputs[self.hidden_name][row], options, nested=True)

    def encode(self, images: Any, normalize_embeddings: bool = False, **options: Any) -> np.ndarray:
        """float32 image embeddings, (dim,) for one image and (n, dim) for a list (SentenceTransformer.encode)."""
        vectors = self(images, normalize=normalize_embeddings, return_tensors=True, **options)
        single = not isinstance(images, list)
        return _stack(vectors[0] if single else [v[0] for v in vectors], single)
