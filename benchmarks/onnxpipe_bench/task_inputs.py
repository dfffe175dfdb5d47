"""The pipeline inputs of one benchmark configuration: texts of an exact token count (question-answering pairs,
fill-mask masks), generated pictures, documents (a picture, a question and word boxes) or speech-like clips, and the
longest input a model takes."""

from __future__ import annotations

import random
import statistics
from typing import Any, Optional

from onnxpipe.text.tokenizer import max_input_length

from .clips import make_clips
from .images import make_images
from .inputs import WORDS, load_tokenizer, make_texts
from .tasks import AUDIO_RATE, IMAGE_LABELS, QUESTION, VQA_QUESTION, TaskSpec


def max_tokens(folder: Any) -> Optional[int]:
    """The longest input (in tokens) the model takes."""
    return max_input_length(folder.read_json("tokenizer_config.json"), folder.config)


def _mask_token(folder: Any) -> Optional[str]:
    token = folder.read_json("tokenizer_config.json").get("mask_token") or folder.read_json("special_tokens_map.json").get("mask_token")
    return token.get("content") if isinstance(token, dict) else token


def word_boxes(words: list[str], per_line: int = 12) -> list[tuple[str, list[int]]]:
    """Words laid out as lines of a page, `per_line` words a line, each with its box in 0-1000 coordinates."""
    boxes = []
    for i, word in enumerate(words):
        line, column = divmod(i, per_line)
        x0 = 40 + column * 78
        y0 = 30 + (line * 30) % 940
        boxes.append((word, [x0, y0, min(x0 + 10 + 6 * len(word), 1000), y0 + 22]))
    return boxes


def _pair_length(tokenizer: Any, question: str, words: list[str]) -> int:
    return len(tokenizer.encode(question.split(), words, is_pretokenized=True).ids)


def document_inputs(folder: Any, spec: TaskSpec, seq_len: int, count: int) -> tuple[list[Any], float]:
    """`count` {image, question, word_boxes} documents whose question and words make `seq_len` tokens (special
    tokens included, as the pipelines tokenize them: a pre-split pair), and their measured mean token count."""
    tokenizer = load_tokenizer(folder.path)
    question_cost = _pair_length(tokenizer, QUESTION, ["river"]) - len(tokenizer.encode(["river"], is_pretokenized=True).ids)
    texts = make_texts(folder.path, count, seq_len - question_cost)
    pictures = make_images(count, *spec.picture)
    documents = [{"image": picture, "question": QUESTION, "word_boxes": word_boxes(text.split())}
                 for picture, text in zip(pictures, texts)]
    counts = [_pair_length(tokenizer, QUESTION, [w for w, _ in d["word_boxes"]]) for d in documents]
    return documents, statistics.fmean(counts)


def text_of_characters(length: int, seed: int) -> str:
    """A text of exactly `length` characters of the passage, from a seed-chosen word, ending on a letter."""
    start = random.Random(seed).randrange(len(WORDS))
    text = ""
    while len(text) < length:
        text += WORDS[start % len(WORDS)] + " "
        start += 1
    text = text[:length]
    return text[:-1] + "a" if text.endswith(" ") else text


def build_inputs(folder: Any, spec: TaskSpec, seq_len: Any, count: int) -> tuple[list[Any], Optional[float]]:
    """`count` pipeline inputs of about `seq_len` tokens each, and their measured mean token count
    (image tasks: `count` base64 pictures of the spec's picture size, and no token count)."""
    if spec.modality == "document":
        return document_inputs(folder, spec, seq_len, count)
    if spec.modality == "speech-text":  # characters, not tokens: VITS reads characters
        return [text_of_characters(seq_len, i) for i in range(count)], float(seq_len)
    if spec.modality == "image":
        pictures = make_images(count, *spec.picture)
        if spec.task == "visual-question-answering":  # the worker decodes the picture and keeps the question
            return [{"image": picture, "question": VQA_QUESTION} for picture in pictures], None
        if spec.task == "zero-shot-object-detection":  # per-picture labels: the form both pipelines read alike
            return [{"image": picture, "candidate_labels": list(IMAGE_LABELS)} for picture in pictures], None
        return pictures, None
    if spec.modality == "audio":
        return make_clips(count, float(str(seq_len).rstrip("s")), AUDIO_RATE), None
    tokenizer = load_tokenizer(folder.path)
    text_len = seq_len
    if spec.task == "question-answering":  # question and context together make seq_len tokens
        text_len = seq_len - len(tokenizer.encode(QUESTION).ids) + 1
    inputs = spec.inputs(make_texts(folder.path, count, text_len), _mask_token(folder))
    counts = [
        len(tokenizer.encode(x["question"], x["context"]).ids) if isinstance(x, dict) else len(tokenizer.encode(x).ids)
        for x in inputs
    ]
    return inputs, statistics.fmean(counts)
