"""The input forms document-question-answering accepts, as transformers' DocumentQuestionAnsweringPipeline reads
them: `dqa(image, question, word_boxes=None)`, one `{"image", "question", "word_boxes"}` dict or a list of them;
word_boxes as `[(word, [x0, y0, x1, y1]), ...]` with boxes normalized to 0-1000."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from onnxpipe.errors import InvalidInputError
from onnxpipe.options import is_number

USAGE = (
    "dqa(image=..., question='...'), dqa(image=..., question='...', word_boxes=[(word, [x0, y0, x1, y1]), ...]) "
    "or dqa([{'image': ..., 'question': '...', 'word_boxes': ...}, ...])"
)
KEYS = ("image", "question", "word_boxes")


@dataclass(frozen=True)
class Document:
    """One question about one document: its image (or None) and its words with boxes (or None: OCR the image)."""

    image: Any
    question: str
    words: Optional[tuple[str, ...]]
    boxes: Optional[tuple[tuple[int, int, int, int], ...]]


def _question(value: Any) -> str:
    if value is None:
        raise InvalidInputError(f"document-question-answering needs a question: {USAGE}.")
    if not isinstance(value, str):
        raise InvalidInputError(f"The question must be a string, got {type(value).__name__}: {value!r:.80}. Use {USAGE}.")
    if not value.split():
        raise InvalidInputError(f"The question is empty ({value!r}); ask something, e.g. 'What is the invoice number?'.")
    return value


def _box(word: str, box: Any, index: int) -> tuple[int, int, int, int]:
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(is_number(v) for v in box):
        raise InvalidInputError(
            f"word_boxes[{index}] ({word!r}) has box {box!r:.80}; a box is four numbers [x0, y0, x1, y1] on a 0-1000 scale."
        )
    x0, y0, x1, y1 = (int(v) for v in box)  # truncated, as transformers' normalize_box truncates
    if not all(0 <= v <= 1000 for v in (x0, y0, x1, y1)) or x1 < x0 or y1 < y0:
        raise InvalidInputError(
            f"word_boxes[{index}] ({word!r}) has box {list(box)}; boxes must be normalized to 0-1000 with x0 <= x1 and "
            "y0 <= y1: divide pixel coordinates by the image's width and height and multiply by 1000."
        )
    return x0, y0, x1, y1


def check_word_boxes(value: Any) -> tuple[tuple[str, ...], tuple[tuple[int, int, int, int], ...]]:
    """The (words, boxes) of a word_boxes value; InvalidInputError naming the first bad entry."""
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple)):
        raise InvalidInputError(
            f"word_boxes must be a list of (word, [x0, y0, x1, y1]) pairs, got {type(value).__name__}: {value!r:.80}."
        )
    if not value:
        raise InvalidInputError(
            "word_boxes is empty: give the document's words with their boxes, or leave word_boxes out to read them "
            "from the image with tesseract."
        )
    words, boxes = [], []
    for index, pair in enumerate(value):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise InvalidInputError(f"word_boxes[{index}] is {pair!r:.80}; each entry is a (word, [x0, y0, x1, y1]) pair.")
        word, box = pair
        if not isinstance(word, str) or not word.strip():
            raise InvalidInputError(f"word_boxes[{index}] has word {word!r:.80}; each word must be a non-empty string.")
        words.append(word)
        boxes.append(_box(word, box, index))
    return tuple(words), tuple(boxes)


def document(image: Any, question: Any, word_boxes: Any) -> Document:
    """One checked input."""
    question = _question(question)
    if word_boxes is None:
        if image is None:
            raise InvalidInputError(
                "document-question-answering needs an image or word_boxes: with an image alone the words are read "
                f"by OCR (tesseract). Use {USAGE}."
            )
        return Document(image, question, None, None)
    words, boxes = check_word_boxes(word_boxes)
    return Document(image, question, words, boxes)


def _from_dict(item: Any) -> Document:
    if not isinstance(item, dict):
        raise InvalidInputError(f"Each input must be a dict with 'image', 'question' and optionally 'word_boxes', got "
                                f"{type(item).__name__}: {item!r:.80}. Use {USAGE}.")
    extra = sorted(map(str, set(item) - set(KEYS)))
    if extra:
        raise InvalidInputError(f"An input dict takes the keys {list(KEYS)}; unknown {extra}. Use {USAGE}.")
    return document(item.get("image"), item.get("question"), item.get("word_boxes"))


def documents_of(image: Any, question: Any, word_boxes: Any) -> tuple[list[Document], bool]:
    """The documents of a call and whether it was for one: a question string makes one input of the image (and
    word_boxes); otherwise the first argument is a dict or a list of dicts, as transformers reads it."""
    if question is not None:
        if isinstance(image, (dict, list, tuple)):
            raise InvalidInputError(f"Give one image with question=, or dicts without question=; not both. Use {USAGE}.")
        return [document(image, question, word_boxes)], True
    if word_boxes is not None:
        raise InvalidInputError(f"word_boxes= needs question= too (or put both in the input dict). Use {USAGE}.")
    if isinstance(image, dict):
        return [_from_dict(image)], True
    if isinstance(image, (list, tuple)):
        if not image:
            raise InvalidInputError("document-question-answering got an empty list; pass at least one input.")
        return [_from_dict(item) for item in image], False
    return [document(image, None, None)], True
