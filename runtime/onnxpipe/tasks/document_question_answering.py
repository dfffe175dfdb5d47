"""document-question-answering (LayoutLM v1, LayoutLMv3): extractive answers {score, answer, start, end} over a
document's words, with start/end as word indices, as transformers' DocumentQuestionAnsweringPipeline returns them.

The words and their boxes (0-1000) come from `word_boxes`, or from the image by OCR (the `tesseract` binary,
vision/ocr.py). The question's words and the document's words are tokenized as a pre-split pair and cut into
windows of `max_seq_len` tokens overlapping by `doc_stride`; each token gets its word's box (LayoutLMv3's tokenizer
rules, or the pipeline's for LayoutLM v1), LayoutLMv3 also the processed image. The span search is extractive QA's
(question_answering_spans.py); spans map back to words through the tokens' word ids.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.options import check_bool, check_int, check_timeout
from onnxpipe.tasks.document_question_answering_inputs import Document, documents_of
from onnxpipe.tasks.pipeline_base import Pipeline
from onnxpipe.tasks.question_answering_spans import window_spans
from onnxpipe.text.tokenizer import TextEncoder
from onnxpipe.vision.images import ImageProcessor, load_image
from onnxpipe.vision.ocr import ocr_words

_PADDINGS = {False: "do_not_pad", "do_not_pad": "do_not_pad", True: "longest", "longest": "longest", "max_length": "max_length"}
_NO_NULL_SCORE = 1000000  # transformers' "no null score seen yet"
_ZERO_BOX = (0, 0, 0, 0)


@dataclass(frozen=True)
class DocumentWindow:
    """One window of tokens of a (question, document) pair: its feeds, the tokens that may answer, and their words."""

    document: int  # index of the document in the call
    ids: np.ndarray
    type_ids: np.ndarray
    attention: np.ndarray
    bbox: np.ndarray  # (L, 4)
    keep: np.ndarray  # 1 where a token may be part of an answer (document words and CLS, not padding)
    word_ids: tuple[Optional[int], ...]
    pixel_values: Optional[np.ndarray]  # (C, H, W) of the document's image, for graphs that take one

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class DocumentBatch:
    """Windows padded on the right into the graph's feeds, with each window's length."""

    arrays: dict[str, np.ndarray]
    lengths: tuple[int, ...]

    def feeds(self) -> dict[str, np.ndarray]:
        """The arrays; the session drops the ones its graph does not declare (token_type_ids for LayoutLMv3)."""
        return self.arrays


def _image_and_question(image: Any = None, question: Any = None, word_boxes: Any = None, **options: Any) -> tuple[Any, dict[str, Any]]:
    """The call signature, `dqa(image=None, question=None, word_boxes=None, **options)`."""
    return (image, question, word_boxes), options


class DocumentQuestionAnsweringPipeline(Pipeline):
    """Answer questions about documents with a LayoutLM-style extractive model; options as in transformers: top_k,
    doc_stride, max_answer_len, max_seq_len, max_question_len (no effect), handle_impossible_answer, lang and
    tesseract_config (OCR), timeout, padding, batch_size (windows per model run)."""

    OPTIONS = {
        "top_k": 1, "doc_stride": None, "max_answer_len": 15, "max_seq_len": None, "max_question_len": None,
        "handle_impossible_answer": False, "lang": None, "tesseract_config": None, "timeout": None,
        "padding": "do_not_pad",
    }

    def setup(self) -> None:
        super().setup()
        if "bbox" not in self.session.inputs:
            raise InvalidOptionError(
                f"{self.model_path.name} has inputs {list(self.session.inputs)}: not a LayoutLM-style document QA "
                "graph (it takes no bbox). Export one with `onnxpipe export CHECKPOINT --task document-question-answering`."
            )
        self.encoder = TextEncoder(self.folder)
        if self.encoder.padding_side != "right":
            raise InvalidOptionError(
                "Document question answering only supports tokenizers whose padding side is 'right', not "
                f"{self.encoder.padding_side!r} (tokenizer_config.json)."
            )
        tokenizer = self.encoder.tokenizer
        self.cls_id = self._token_id("cls_token")
        self.sep_id = self._token_id("sep_token")
        # LayoutLM v1: the pipeline boxes the tokens; LayoutLMv2/v3: their tokenizer does, with these special boxes
        self.pipeline_boxes = self.folder.config.get("model_type") == "layoutlm"
        config = self.folder.read_json("tokenizer_config.json")
        self.special_boxes = {name: tuple(config.get(f"{name}_token_box") or _ZERO_BOX) for name in ("cls", "sep", "pad")}
        self.added_pair = tokenizer.num_special_tokens_to_add(True)
        self.start_name = self.session.output_named("start_logits")
        self.end_name = self.session.output_named("end_logits", 1)
        self.takes_image = "pixel_values" in self.session.inputs
        self.processor: Optional[ImageProcessor] = None
        self.processor_ocr: Optional[tuple[Optional[str], str]] = None  # (lang, config) when the processor OCRs
        if (self.folder.path / "preprocessor_config.json").is_file():
            settings = self.folder.read_json("preprocessor_config.json")
            self.processor = ImageProcessor.from_config(settings, str(self.folder.path / "preprocessor_config.json"))
            if settings.get("apply_ocr", self.processor.kind == "LayoutLMv3ImageProcessor"):
                self.processor_ocr = (settings.get("ocr_lang"), settings.get("tesseract_config") or "")
        if self.takes_image and self.processor is None:
            raise InvalidOptionError(
                f"{self.model_path.name} takes pixel_values but {self.folder.path} has no preprocessor_config.json; "
                "export the model with `onnxpipe export`, which writes it."
            )

    def _token_id(self, name: str) -> Optional[int]:
        token = self.encoder.special_token(name)
        return self.encoder.tokenizer.token_to_id(token) if token else None

    # -- call ----------------------------------------------------------------------------------
    def call_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """`dqa(image, question, word_boxes, **options)`, each by name too; see documents_of for the forms."""
        return _image_and_question(*args, **kwargs)

    def split_inputs(self, inputs: Any) -> tuple[list[Document], bool]:
        return documents_of(*inputs)

    def validate_options(self, options: dict[str, Any]) -> None:
        check_timeout(options)
        for name in ("top_k", "max_answer_len", "max_seq_len", "max_question_len"):
            check_int(name, options[name], optional=name != "top_k" and name != "max_answer_len")
        check_int("doc_stride", options["doc_stride"], minimum=0, optional=True)
        check_bool("handle_impossible_answer", options["handle_impossible_answer"])
        for name in ("lang", "tesseract_config"):
            if options[name] is not None and not isinstance(options[name], str):
                raise InvalidOptionError(f"{name} must be a string (e.g. lang='eng', tesseract_config='--psm 6'), got {options[name]!r}.")
        if not isinstance(options["padding"], (bool, str)) or options["padding"] not in _PADDINGS:
            raise InvalidOptionError(
                f"padding must be one of False/'do_not_pad', True/'longest', 'max_length'; got {options['padding']!r}."
            )
        if options["max_question_len"] is not None:
            warnings.warn(
                "max_question_len has no effect: questions are never truncated (transformers 4.57's document QA "
                "pipeline fails on it).", UserWarning, stacklevel=4,
            )
        self.lengths(options)

    def lengths(self, options: Mapping[str, Any]) -> tuple[int, int]:
        """(max_seq_len, doc_stride) of a call: transformers' defaults (the tokenizer's model_max_length, and
        min(max_seq_len // 2, 256)), checked against the tokenizer's special tokens."""
        max_seq_len = options["max_seq_len"] or self.encoder.model_max_length or 512
        doc_stride = options["doc_stride"]
        if doc_stride is None:
            doc_stride = min(max_seq_len // 2, 256)
        if max_seq_len <= self.added_pair:
            raise InvalidOptionError(
                f"max_seq_len ({max_seq_len}) leaves no room for the document next to the {self.added_pair} special "
                f"tokens of a question/document pair; use a larger max_seq_len (the model takes {self.encoder.model_max_length})."
            )
        limit = self.encoder.model_max_length
        if limit is not None and max_seq_len > limit:
            raise InvalidOptionError(f"max_seq_len ({max_seq_len}) is longer than the model takes ({limit}); lower it.")
        if doc_stride >= max_seq_len - self.added_pair:
            raise InvalidOptionError(
                f"doc_stride ({doc_stride}) must be less than max_seq_len ({max_seq_len}) minus the tokenizer's "
                f"{self.added_pair} special tokens; lower doc_stride (default: max_seq_len // 2)."
            )
        return max_seq_len, doc_stride

    # -- words, boxes and windows --------------------------------------------------------------
    def run_items(self, items: Sequence[Document], options: dict[str, Any]) -> list[Any]:
        """One answer list per document, in order."""
        windows = self.windows(items, options)
        logits = self.run_pieces(windows, options)
        per_document: list[list[tuple[DocumentWindow, Any]]] = [[] for _ in items]
        for window, row in zip(windows, logits):
            per_document[window.document].append((window, row))
        return [self.answers(words, pairs, options) for words, pairs in zip(self._words, per_document)]

    def windows(self, items: Sequence[Document], options: dict[str, Any]) -> list[DocumentWindow]:
        """Every window of every document, with its words read (or OCR'd) and its image processed once per call."""
        max_seq_len, doc_stride = self.lengths(options)
        images: dict[int, Any] = {}  # id(input image) -> loaded image, so an image asked several questions loads once
        ocr: dict[int, tuple[tuple[str, ...], tuple[tuple[int, int, int, int], ...]]] = {}
        pixels: dict[int, np.ndarray] = {}
        self._words: list[tuple[str, ...]] = []
        result: list[DocumentWindow] = []
        for index, item in enumerate(items):
            key = id(item.image)
            if item.image is not None and (self.takes_image or item.words is None) and key not in images:
                images[key] = load_image(item.image, options["timeout"], self.media_sources, self.limits)
            if self.takes_image and item.image is None:
                raise InvalidInputError(
                    f"{self.model_path.name} (LayoutLMv3) reads the page image as well as the words: pass image= with "
                    "the word_boxes."
                )
            words, boxes = item.words, item.boxes
            if words is None:
                if key not in ocr:
                    ocr[key] = self._ocr(images[key], options)
                words, boxes = ocr[key]
            if self.takes_image and key not in pixels:
                pixels[key] = self.processor.preprocess(images[key])  # type: ignore[union-attr]
            self._words.append(words)
            result.extend(self._windows_of(index, item.question, words, boxes, pixels.get(key), max_seq_len, doc_stride, options))
        return result

    def _ocr(self, image: Any, options: dict[str, Any]) -> tuple[tuple[str, ...], tuple[tuple[int, int, int, int], ...]]:
        """Words and boxes tesseract reads: with the call's lang / tesseract_config, else the image processor's OCR
        settings when it applies OCR (LayoutLMv3's apply_ocr), else tesseract's defaults."""
        lang, config = self.processor_ocr or (None, "")
        lang = options["lang"] if options["lang"] is not None else lang
        config = options["tesseract_config"] if options["tesseract_config"] is not None else config
        words, boxes = ocr_words(image, lang, config)
        if not words:
            raise InvalidInputError(
                f"tesseract read no words in the {image.width}x{image.height} image (lang={lang!r}); pass word_boxes, "
                "or a sharper or larger scan."
            )
        return tuple(words), tuple(tuple(box) for box in boxes)  # type: ignore[misc]

    def _windows_of(self, index: int, question: str, words: Sequence[str], boxes: Sequence[Sequence[int]],
                    pixel_values: Optional[np.ndarray], max_seq_len: int, doc_stride: int,
                    options: dict[str, Any]) -> list[DocumentWindow]:
        tokenizer = self.encoder.configured(max_seq_len, stride=doc_stride, strategy="only_second")
        try:
            encoding = tokenizer.encode_batch([(question.split(), list(words))], is_pretokenized=True)[0]
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # the Rust tokenizer raises (or panics) when the question leaves no room
            raise InvalidInputError(
                f"The tokenizer could not cut the question {question!r:.60} and {len(words)} words into windows of "
                f"max_seq_len={max_seq_len} with doc_stride={doc_stride}: {str(exc).splitlines()[0][:200]}. Shorten "
                "the question, raise max_seq_len or lower doc_stride."
            ) from exc
        parts = [encoding] + list(encoding.overflowing)
        padding = _PADDINGS[options["padding"]]
        if padding != "do_not_pad":
            width = max_seq_len if padding == "max_length" else max(len(part) for part in parts)
            for part in parts:
                part.pad(width, direction="right", pad_id=self.encoder.pad_id, pad_token=self.encoder.pad_token or "[PAD]")
        return [self._window(index, part, boxes, pixel_values) for part in parts]

    def _window(self, index: int, encoding: Any, boxes: Sequence[Sequence[int]], pixel_values: Optional[np.ndarray]) -> DocumentWindow:
        ids = np.asarray(encoding.ids, dtype=np.int64)
        attention = np.asarray(encoding.attention_mask, dtype=np.int64)
        sequences, word_ids = encoding.sequence_ids, tuple(encoding.word_ids)
        bbox = np.array([self._token_box(int(i), s, w, boxes) for i, s, w in zip(ids, sequences, word_ids)], dtype=np.int64)
        # only document tokens may answer, and the CLS token, which carries the "no answer" score
        keep = np.array([s == 1 for s in sequences], dtype=np.int64)
        if self.cls_id is not None:
            keep[ids == self.cls_id] = 1
        return DocumentWindow(index, ids, np.asarray(encoding.type_ids, dtype=np.int64), attention,
                              bbox.reshape(len(ids), 4), keep & attention, word_ids, pixel_values)

    def _token_box(self, token: int, sequence: Optional[int], word: Optional[int], boxes: Sequence[Sequence[int]]) -> Sequence[int]:
        """A token's box: LayoutLM v1 as the pipeline gives it (document words their box, [SEP] 1000s, the rest 0s);
        LayoutLMv2/v3 as their tokenizer gives it (question words and padding the pad box, CLS/SEP their boxes)."""
        if self.pipeline_boxes:
            if sequence == 1:
                return boxes[word]  # type: ignore[index]
            return (1000,) * 4 if token == self.sep_id else _ZERO_BOX
        if word is not None:
            return self.special_boxes["pad"] if sequence == 0 else boxes[word]
        if token == self.cls_id:
            return self.special_boxes["cls"]
        if token == self.sep_id:
            return self.special_boxes["sep"]
        return self.special_boxes["pad"]

    # -- running -------------------------------------------------------------------------------
    def prepare(self, items: Sequence[Any], options: dict[str, Any]) -> list[Any]:
        return list(items)

    def batch_groups(self, pieces: Sequence[Any]) -> list[list[int]]:
        """Windows of similar length together (every processed image has the processor's one size)."""
        return [sorted(range(len(pieces)), key=lambda i: len(pieces[i]))]

    def collate(self, pieces: Sequence[DocumentWindow], options: dict[str, Any]) -> DocumentBatch:
        """Windows padded on the right (pad id, mask 0, the pad box), as one window at a time would run."""
        width, rows = max(len(p) for p in pieces), len(pieces)
        ids = np.full((rows, width), self.encoder.pad_id, dtype=np.int64)
        mask = np.zeros((rows, width), dtype=np.int64)
        types = np.zeros((rows, width), dtype=np.int64)
        pad_box = _ZERO_BOX if self.pipeline_boxes else self.special_boxes["pad"]
        bbox = np.tile(np.asarray(pad_box, dtype=np.int64), (rows, width, 1))
        for row, piece in enumerate(pieces):
            n = len(piece)
            ids[row, :n], mask[row, :n], types[row, :n], bbox[row, :n] = piece.ids, piece.attention, piece.type_ids, piece.bbox
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "bbox": bbox}
        if self.takes_image:
            arrays["pixel_values"] = np.stack([p.pixel_values for p in pieces])  # type: ignore[misc]
        return DocumentBatch(arrays, tuple(len(p) for p in pieces))

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: DocumentBatch, row: int, options: dict[str, Any]) -> Any:
        """The window's start and end logits over its own text tokens (LayoutLMv3's graph adds the image patches)."""
        n = encoded.lengths[row]
        return outputs[self.start_name][row, :n].astype(np.float32), outputs[self.end_name][row, :n].astype(np.float32)

    def answers(self, words: Sequence[str], windows: Sequence[tuple[DocumentWindow, Any]], options: dict[str, Any]) -> list[dict[str, Any]]:
        """transformers' answers for one document: the top_k spans of every window, best first, as word indices."""
        top_k, impossible = options["top_k"], options["handle_impossible_answer"]
        min_null_score: float = _NO_NULL_SCORE
        found: list[dict[str, Any]] = []
        for window, (start_logits, end_logits) in windows:
            starts, ends, scores, min_null_score = window_spans(
                start_logits, end_logits, window.keep, top_k, options["max_answer_len"], impossible, min_null_score,
            )
            for start, end, score in zip(starts, ends, scores):
                first, last = window.word_ids[int(start)], window.word_ids[int(end)]
                if first is not None and last is not None:
                    found.append({"score": float(score), "answer": " ".join(words[first : last + 1]), "start": first, "end": last})
        if impossible:
            found.append({"score": min_null_score, "answer": "", "start": 0, "end": 0})
        return sorted(found, key=lambda a: a.get("score", 0), reverse=True)[:top_k]
