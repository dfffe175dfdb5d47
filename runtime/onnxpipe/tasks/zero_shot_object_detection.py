"""zero-shot-object-detection (OWL-ViT, OWLv2): boxes for free-text labels, [{score, label, box}] per image, as
transformers' ZeroShotObjectDetectionPipeline returns them.

transformers runs the model once per (image, label); here one run scores every label of an image (the graph takes
`batch * labels` token rows), which gives the same logits: padded token rows are masked, and padding with id 0
keeps the text pooling (the position of the highest token id) where it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.maths import sigmoid
from onnxpipe.options import check_int, check_number, check_timeout
from onnxpipe.tasks.image_base import IMAGE_OPTIONS
from onnxpipe.tasks.object_detection import corners
from onnxpipe.tasks.pipeline_base import Pipeline
from onnxpipe.tasks.zero_shot_object_detection_images import OwlImageProcessor
from onnxpipe.text.tokenizer import TextEncoder
from onnxpipe.vision.images import load_image

GRAPH_INPUTS = ("input_ids", "pixel_values", "attention_mask")
USAGE = (
    "detector(image, candidate_labels=['cat', 'dog']), detector({'image': ..., 'candidate_labels': [...]}), "
    "or a list of either"
)
BOX_KEYS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class Query:
    """One image and its labels as the caller gave them; labels None: the call's (or pipeline's) candidate_labels."""

    image: Any
    labels: Optional[tuple[str, ...]]


@dataclass(frozen=True)
class QueryPiece:
    """One preprocessed image, its original (height, width), its labels and their token encodings."""

    pixel_values: np.ndarray
    original_size: tuple[int, int]
    labels: tuple[str, ...]
    encodings: tuple[Any, ...]


@dataclass(frozen=True)
class QueryBatch:
    """Same-size images stacked with the token rows of all their labels (image-major): the graph feeds."""

    arrays: dict[str, np.ndarray]
    pieces: tuple[QueryPiece, ...]

    def feeds(self) -> dict[str, np.ndarray]:
        """pixel_values, input_ids, attention_mask."""
        return self.arrays


def label_list(value: Any, what: str = "candidate_labels") -> list[str]:
    """Labels as transformers reads them: a string is split on commas (kept as written, spaces included), a
    list or tuple must hold strings; InvalidOptionError naming the value otherwise."""
    if isinstance(value, str):
        if not value.strip():
            raise InvalidOptionError(f"{what} is an empty string; give labels such as 'cat,dog' or ['cat', 'dog'].")
        return value.split(",")
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidOptionError(
            f"{what} must be a non-empty list of strings or a comma-separated string, e.g. ['cat', 'dog'] or "
            f"'cat,dog'; got {value!r:.80}."
        )
    bad = [label for label in value if not isinstance(label, str)]
    if bad:
        raise InvalidOptionError(
            f"{what} must hold strings only; got {type(bad[0]).__name__} {bad[0]!r:.40} in {value!r:.80}."
        )
    return list(value)


def _nested(labels: Any) -> bool:
    """Whether call labels are one list per image ([['cat'], ['dog', 'car']])."""
    return isinstance(labels, (list, tuple)) and bool(labels) and all(isinstance(x, (list, tuple)) for x in labels)


def _from_dict(item: Any) -> Query:
    if not isinstance(item, dict):
        raise InvalidInputError(
            f"Each input must be a dict {{'image': ..., 'candidate_labels': [...]}}, got {type(item).__name__}: "
            f"{item!r:.80}. Use {USAGE}."
        )
    extra = sorted(set(item) - {"image", "candidate_labels"})
    if item.get("image") is None or extra:
        raise InvalidInputError(
            f"An input dict takes the keys 'image' (required) and 'candidate_labels'; got {sorted(item)}. Use {USAGE}."
        )
    labels = item.get("candidate_labels")
    return Query(item["image"], None if labels is None else tuple(label_list(labels)))


def queries_of(image: Any, labels: Any) -> tuple[list[Query], bool]:
    """The (image, labels) queries of a call and whether it was for one image. Per-image labels come as a list of
    lists beside a list of images, or inside dicts; flat labels (a list or a comma-separated string) apply to
    every image."""
    images = image if isinstance(image, (list, tuple)) else [image]
    if not images:
        raise InvalidInputError(f"zero-shot-object-detection got an empty list of images. Use {USAGE}.")
    dicts = [isinstance(i, dict) for i in images]
    if any(dicts):
        if not all(dicts):
            raise InvalidInputError(f"Give every input as a dict, or none: got a list mixing dicts and images. Use {USAGE}.")
        if labels is not None:
            raise InvalidInputError(f"Give candidate_labels inside the dicts or as candidate_labels=, not both. Use {USAGE}.")
        return [_from_dict(i) for i in images], not isinstance(image, (list, tuple))
    if any(i is None for i in images):
        raise InvalidInputError(f"zero-shot-object-detection needs an image: {USAGE}.")
    if _nested(labels):
        if not isinstance(image, (list, tuple)) or len(labels) != len(images):
            count = len(images) if isinstance(image, (list, tuple)) else "a single image"
            raise InvalidInputError(
                f"candidate_labels holds {len(labels)} lists (one per image) but the call has {count}; give one "
                "list of labels per image, or one flat list for every image."
            )
        return [Query(i, tuple(label_list(x))) for i, x in zip(images, labels)], False
    return [Query(i, None) for i in images], not isinstance(image, (list, tuple))


def _image_and_labels(image: Any = None, candidate_labels: Any = None, **options: Any) -> tuple[Any, dict[str, Any]]:
    """The call signature, `detector(image=None, candidate_labels=None, **options)` (text_queries= is
    transformers' older name for candidate_labels)."""
    if "text_queries" in options:
        if candidate_labels is not None:
            raise InvalidOptionError("Give candidate_labels or text_queries (its older name), not both.")
        candidate_labels = options.pop("text_queries")
    if candidate_labels is not None and not _nested(candidate_labels):
        options["candidate_labels"] = candidate_labels
    return (image, candidate_labels), options


class ZeroShotObjectDetectionPipeline(Pipeline):
    """Detect objects named by free-text labels with OWL-ViT / OWLv2; options as in transformers: candidate_labels,
    threshold (default 0.1), top_k (None or 0: every box over the threshold), timeout, batch_size (images per run)."""

    OPTIONS = {"candidate_labels": None, "threshold": 0.1, "top_k": None, **IMAGE_OPTIONS}

    def setup(self) -> None:
        super().setup()
        missing = [name for name in GRAPH_INPUTS if name not in self.session.inputs]
        absent = [name for name in ("logits", "pred_boxes") if name not in self.session.output_names]
        if missing or absent:
            raise InvalidOptionError(
                f"{self.model_path.name} has inputs {list(self.session.inputs)} and outputs "
                f"{self.session.output_names}: not an OWL-ViT-style detector (input_ids + pixel_values + "
                "attention_mask -> logits + pred_boxes). Export one with `onnxpipe export CHECKPOINT --task "
                "zero-shot-object-detection`."
            )
        self.folder.require("preprocessor_config.json", "holds the image preprocessing settings")
        self.processor = OwlImageProcessor.from_config(
            self.folder.read_json("preprocessor_config.json"), str(self.folder.path / "preprocessor_config.json")
        )
        self.encoder = TextEncoder(self.folder)
        text_config = self.folder.config.get("text_config") or {}
        self.max_tokens = int(text_config.get("max_position_embeddings") or 16)

    def validate_options(self, options: dict[str, Any]) -> None:
        check_timeout(options)
        if options["candidate_labels"] is not None:
            options["candidate_labels"] = label_list(options["candidate_labels"])
        check_number("threshold", options["threshold"], must="must be a number (a score between 0 and 1)")
        check_int("top_k", options["top_k"], minimum=0, optional=True,
                  must="must be a positive int, or None / 0 for every box over the threshold")

    def call_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """`detector(image, candidate_labels, **options)`, either by name too: see `queries_of` for their forms."""
        return _image_and_labels(*args, **kwargs)

    def split_inputs(self, inputs: Any) -> tuple[list[Query], bool]:
        """The (image, labels) queries of the call and whether it was for one image."""
        return queries_of(*inputs)

    def tokenize(self, labels: Sequence[str]) -> tuple[Any, ...]:
        """The untruncated encodings of `labels`; InvalidInputError for one longer than the text encoder takes."""
        encodings = self.encoder.configured(None).encode_batch(list(labels))
        for label, encoding in zip(labels, encodings):
            if len(encoding.ids) > self.max_tokens:
                raise InvalidInputError(
                    f"The label {label!r:.80} is {len(encoding.ids)} tokens long; this model's text encoder takes at "
                    f"most {self.max_tokens} (max_position_embeddings). Use a shorter label."
                )
        return tuple(encodings)

    def prepare(self, items: Sequence[Query], options: dict[str, Any]) -> list[QueryPiece]:
        pieces = []
        for item in items:
            labels = item.labels if item.labels is not None else options["candidate_labels"]
            if labels is None:
                raise InvalidOptionError(
                    f"zero-shot-object-detection needs candidate_labels, e.g. ['cat', 'remote control']: {USAGE}."
                )
            image = load_image(item.image, options["timeout"], self.media_sources, self.limits)
            pixel_values = self.processor.preprocess(image)
            pieces.append(QueryPiece(pixel_values, (image.height, image.width), tuple(labels), self.tokenize(labels)))
        return pieces

    def batch_groups(self, pieces: Sequence[QueryPiece]) -> list[list[int]]:
        """Images of one processed size with the same number of labels share a batch (the graph splits its token
        rows evenly among the images)."""
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, piece in enumerate(pieces):
            groups.setdefault((piece.pixel_values.shape, len(piece.labels)), []).append(index)
        return list(groups.values())

    def collate(self, pieces: Sequence[QueryPiece], options: dict[str, Any]) -> QueryBatch:
        encodings = [encoding for piece in pieces for encoding in piece.encodings]
        width = max(len(encoding.ids) for encoding in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)  # id 0: see the module docstring
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        values = np.stack([piece.pixel_values for piece in pieces])
        return QueryBatch({"pixel_values": values, "input_ids": ids, "attention_mask": mask}, tuple(pieces))

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: QueryBatch, row: int, options: dict[str, Any]) -> Any:
        """transformers' per-label post-processing: sigmoid scores over the threshold (and not 0), boxes in
        original pixels truncated to ints, sorted by score (stable), the top_k first."""
        piece = encoded.pieces[row]
        scores = sigmoid(outputs["logits"][row].astype(np.float32))  # (boxes, labels)
        boxes = corners(outputs["pred_boxes"][row].astype(np.float32)) * self.processor.box_scale(*piece.original_size)
        results = []
        for column, label in enumerate(piece.labels):
            label_scores = scores[:, column]
            for index in np.flatnonzero((label_scores > options["threshold"]) & (label_scores != 0)):
                box = dict(zip(BOX_KEYS, (int(v) for v in boxes[index])))
                results.append({"score": float(label_scores[index]), "label": label, "box": box})
        results = sorted(results, key=lambda result: result["score"], reverse=True)
        return results[: options["top_k"]] if options["top_k"] else results
