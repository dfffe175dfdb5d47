"""visual-question-answering (ViLT): a question about an image, answered as transformers does: the top_k answers of
the classifier's id2label, each with its sigmoid score, best first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.maths import sigmoid
from onnxpipe.options import check_bool, check_top_k
from onnxpipe.tasks.image_base import IMAGE_OPTIONS, ImagePipeline
from onnxpipe.text.tokenizer import TextEncoder
from onnxpipe.vision.images import load_image

PADDING = (False, True, "longest", "do_not_pad", "max_length")
GRAPH_INPUTS = ("input_ids", "pixel_values")
USAGE = "vqa(image=..., question='...'), vqa(image, question), or vqa({'image': ..., 'question': '...'})"


@dataclass(frozen=True)
class Question:
    """One (image, question) pair as the caller gave it."""

    image: Any
    question: str


@dataclass(frozen=True)
class QuestionPiece:
    """One preprocessed pair: pixel_values (C, H, W) and the question's token encoding."""

    pixel_values: np.ndarray
    encoding: Any

    def __len__(self) -> int:
        return len(self.encoding.ids)


@dataclass(frozen=True)
class QuestionBatch:
    """Same-size images stacked with their padded questions: the graph feeds."""

    arrays: dict[str, np.ndarray]

    def feeds(self) -> dict[str, np.ndarray]:
        """The arrays; the session drops pixel_mask when the graph takes none (onnxpipe's ViLT export)."""
        return self.arrays


def _question(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(
            f"A question must be a string, got {type(value).__name__}: {value!r:.80}. Use {USAGE}."
        )
    if not value.strip():
        raise InvalidInputError(f"The question is empty ({value!r}); ask something, e.g. 'What color is the car?'.")
    return value


def _from_dict(item: Any) -> Question:
    if not isinstance(item, dict):
        raise InvalidInputError(
            f"Each input must be a dict {{'image': ..., 'question': '...'}}, got {type(item).__name__}: {item!r:.80}."
        )
    missing = [key for key in ("image", "question") if item.get(key) is None]
    extra = sorted(set(item) - {"image", "question"})
    if missing or extra:
        raise InvalidInputError(
            f"An input dict needs the keys 'image' and 'question' only; missing {missing}, unknown {extra}. "
            f"Use {USAGE}."
        )
    return Question(item["image"], _question(item["question"]))


def pairs_of(image: Any, question: Any) -> tuple[list[Question], bool]:
    """The (image, question) pairs of a call, as transformers reads its arguments, and whether the call was for
    one pair. A list of images with a list of questions asks every question of every image (questions outer)."""
    if question is None:
        if isinstance(image, dict):
            return [_from_dict(image)], True
        if isinstance(image, (list, tuple)) and image and all(isinstance(i, dict) for i in image):
            return [_from_dict(i) for i in image], False
        if image is None:
            raise InvalidInputError(f"visual-question-answering needs an image and a question: {USAGE}.")
        raise InvalidInputError(f"visual-question-answering needs a question about the image: {USAGE}.")
    if isinstance(image, dict):
        raise InvalidInputError(f"Give the question inside the dict or as question=, not both: {USAGE}.")
    questions = question if isinstance(question, (list, tuple)) else [question]
    images = image if isinstance(image, (list, tuple)) else [image]
    if not questions or not images:
        empty = "questions" if not questions else "images"
        raise InvalidInputError(f"visual-question-answering got an empty list of {empty}.")
    if any(i is None for i in images):
        raise InvalidInputError(f"visual-question-answering needs an image: {USAGE}.")
    pairs = [Question(im, _question(q)) for q in questions for im in images]
    return pairs, not isinstance(image, (list, tuple)) and not isinstance(question, (list, tuple))


def _image_and_question(image: Any = None, question: Any = None, **options: Any) -> tuple[Any, dict[str, Any]]:
    """The call signature, `vqa(image=None, question=None, **options)`."""
    return (image, question), options


class VisualQuestionAnsweringPipeline(ImagePipeline):
    """Answer questions about images with a ViLT-style classifier; options as in transformers: top_k (default 5),
    padding, truncation (default True here: over-long questions are cut with a warning), timeout, batch_size."""

    OPTIONS = {"top_k": 5, "padding": False, "truncation": True, **IMAGE_OPTIONS}

    def setup(self) -> None:
        super().setup()
        missing = [name for name in GRAPH_INPUTS if name not in self.session.inputs]
        if missing or "logits" not in self.session.output_names:
            raise InvalidOptionError(
                f"{self.model_path.name} has inputs {list(self.session.inputs)} and outputs "
                f"{self.session.output_names}: not a ViLT-style answer classifier (input_ids + pixel_values -> "
                "logits). onnxpipe answers with ViLT; export one with `onnxpipe export CHECKPOINT --task vqa`."
            )
        self.encoder = TextEncoder(self.folder)
        self.logits_name = self.session.output_named("logits")

    def validate_options(self, options: dict[str, Any]) -> None:
        self.validate_image_options(options)
        check_top_k(options["top_k"], "5, as in transformers")
        check_bool("truncation", options["truncation"])
        padding = options["padding"]
        if not (isinstance(padding, bool) or (isinstance(padding, str) and padding in PADDING)):
            raise InvalidOptionError(f"padding must be one of {PADDING}, got {padding!r}.")

    def call_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """`vqa(image, question, **options)`, either argument by name too: see `pairs_of` for their forms."""
        return _image_and_question(*args, **kwargs)

    def split_inputs(self, inputs: Any) -> tuple[list[Question], bool]:
        """The (image, question) pairs of the call and whether it asked about one pair."""
        return pairs_of(*inputs)

    def prepare(self, items: Sequence[Question], options: dict[str, Any]) -> list[QuestionPiece]:
        encodings = self.encoder.tokenize([item.question for item in items], truncation=options["truncation"])
        processed: dict[int, np.ndarray] = {}  # an image asked several questions is processed once per call
        pieces = []
        for item, encoding in zip(items, encodings):
            key = id(item.image)
            if key not in processed:
                processed[key] = self.processor.preprocess(load_image(item.image, options["timeout"], self.media_sources, self.limits))
            pieces.append(QuestionPiece(processed[key], encoding))
        return pieces

    def batch_groups(self, pieces: Sequence[Any]) -> list[list[int]]:
        """Only images of one processed size share a batch (the graph takes the pixel_mask as all ones), questions
        of similar length together."""
        return [sorted(group, key=lambda i: len(pieces[i])) for group in super().batch_groups(pieces)]

    def collate(self, pieces: Sequence[QuestionPiece], options: dict[str, Any]) -> QuestionBatch:
        text = self.encoder.pad([p.encoding for p in pieces])
        arrays = text.feeds()
        if options["padding"] == "max_length" and self.encoder.model_max_length:
            arrays = self._padded_to(arrays, self.encoder.model_max_length)
        values = np.stack([p.pixel_values for p in pieces])
        mask = np.ones((values.shape[0], values.shape[2], values.shape[3]), dtype=np.int64)
        return QuestionBatch({**arrays, "pixel_values": values, "pixel_mask": mask})

    def _padded_to(self, arrays: dict[str, np.ndarray], width: int) -> dict[str, np.ndarray]:
        """Token arrays widened to `width` columns on the tokenizer's padding side (padding="max_length")."""
        extra = width - arrays["input_ids"].shape[1]
        if extra <= 0:
            return arrays
        side = (extra, 0) if self.encoder.padding_side == "left" else (0, extra)
        fill = {"input_ids": self.encoder.pad_id}
        return {k: np.pad(v, ((0, 0), side), constant_values=fill.get(k, 0)) for k, v in arrays.items()}

    def postprocess(
        self, outputs: dict[str, np.ndarray], encoded: QuestionBatch, row: int, options: dict[str, Any]
    ) -> Any:
        scores = sigmoid(outputs[self.logits_name][row], float64=True)
        top_k: Optional[int] = options["top_k"] or 5  # transformers reads None as its default, 5
        order = np.argsort(-scores, kind="stable")[: min(top_k, len(scores))]
        return [{"score": float(scores[i]), "answer": self.label(int(i))} for i in order]
