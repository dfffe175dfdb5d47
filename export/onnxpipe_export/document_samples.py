"""Document samples for validating and calibrating document question-answering exports: made-up forms as
(word, box) lists, each asked one question, tokenized as transformers' document-question-answering pipeline
tokenizes them (with a generated picture for models that take one, LayoutLMv3)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from .image_samples import QUESTIONS, generated_image
from .samples import Batch, Samples, load_tokenizer, max_length

WORDS: tuple[str, ...] = (
    "Invoice", "number", "4521", "Date", "2024-03-15", "Total", "$19.99", "Name:", "Paris", "street", "Tax", "7%",
    "Signature", "café", "Order", "#12", "due", "Thank", "you", "Zürich", "Phone", "555-0123", "Item", "Qty",
)
# (documents per batch, words per document) of each validation batch; calibration takes one document per batch
VALIDATION_SHAPES: tuple[tuple[int, int], ...] = ((2, 6), (2, 17), (2, 40))
CALIBRATION_WORDS: tuple[int, ...] = (5, 12, 30)


def document(count: int, seed: int) -> tuple[list[str], list[list[int]]]:
    """`count` words drawn from WORDS with boxes normalized to 0-1000, laid out in lines."""
    rng = np.random.default_rng(seed)
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), size=count)]
    boxes = []
    for i, word in enumerate(words):
        x, y = 40 + 150 * (i % 6) + int(rng.integers(0, 20)), 30 + 60 * (i // 6) % 940
        boxes.append([x, y, min(1000, x + 14 * len(word)), min(1000, y + 20)])
    return words, boxes


def _tokenized(tokenizer: Any, questions: list[str], documents: list[tuple[list[str], list[list[int]]]],
               limit: int) -> dict[str, np.ndarray]:
    """input_ids, attention_mask, bbox (and token_type_ids) as the pipeline makes them: LayoutLMv2/v3 tokenizers
    take the boxes themselves; for LayoutLM v1 the pipeline gives context words their box, [SEP] 1000s, others 0s."""
    options = dict(padding=True, truncation="only_second", max_length=limit, return_tensors="np")
    words = [d[0] for d in documents]
    if "boxes" in inspect.signature(tokenizer.__call__).parameters:
        return dict(tokenizer(questions, words, boxes=[d[1] for d in documents], **options))
    encoded = tokenizer([q.split() for q in questions], words, is_split_into_words=True, **options)
    bbox = np.zeros((*encoded["input_ids"].shape, 4), dtype=np.int64)
    for row, (_, boxes) in enumerate(documents):
        for col, (token, sequence, word) in enumerate(
            zip(encoded["input_ids"][row], encoded.sequence_ids(row), encoded.word_ids(row))
        ):
            if sequence == 1:
                bbox[row, col] = boxes[word]
            elif token == tokenizer.sep_token_id:
                bbox[row, col] = 1000
    return {**dict(encoded), "bbox": bbox}


def _pixels(source: Path, count: int, seed: int) -> dict[str, np.ndarray]:
    """pixel_values of `count` generated pictures when the checkpoint has an image processor (LayoutLMv3)."""
    if not (source / "preprocessor_config.json").is_file():
        return {}
    from PIL import Image
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(str(source), apply_ocr=False)
    pictures = [Image.fromarray(generated_image(80 + 10 * i, 60 + 7 * i, seed + i)) for i in range(count)]
    return {"pixel_values": np.asarray(processor(images=pictures, return_tensors="np")["pixel_values"])}


def _batch(source: Path, tokenizer: Any, limit: int, shape: tuple[int, int], seed: int) -> Batch:
    count, words = shape
    documents = [document(words, seed + i) for i in range(count)]
    questions = [QUESTIONS[(seed + i) % len(QUESTIONS)] for i in range(count)]
    return Batch({**_tokenized(tokenizer, questions, documents, limit), **_pixels(source, count, seed)})


def build_document_samples(source: Path, config: dict[str, Any]) -> Samples:
    """Validation batches: per VALIDATION_SHAPES, made-up documents each asked one question."""
    tokenizer = load_tokenizer(source)
    limit = max_length(tokenizer, config)
    batches = [_batch(source, tokenizer, limit, shape, 10 * i) for i, shape in enumerate(VALIDATION_SHAPES)]
    shapes = ", ".join(f"{n}x{w} words" for n, w in VALIDATION_SHAPES)
    return Samples(tuple(batches), f"{len(batches)} batches of documents with a question each ({shapes})")


def build_document_calibration(source: Path, config: dict[str, Any]) -> list[Batch]:
    """One made-up document per calibration batch, distinct from the validation documents."""
    tokenizer = load_tokenizer(source)
    limit = max_length(tokenizer, config)
    return [_batch(source, tokenizer, limit, (1, words), 100 + i) for i, words in enumerate(CALIBRATION_WORDS)]
