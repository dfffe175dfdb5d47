"""document-question-answering (LayoutLMv3 and LayoutLM v1) at parity with transformers.pipeline, word_boxes given;
OCR through the tesseract binary against pytesseract's reading; every bad input and option."""

from __future__ import annotations

import shutil

import pytest
from support.document_checkpoints import (
    ARCHS,
    QUESTIONS,
    WORD_BOXES,
    build_document_checkpoint,
    document_picture,
    reference_pipeline,
)

from onnxpipe import pipeline
from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.registry import normalize_task, task_from_architectures
from onnxpipe.vision import ocr

TASK = "document-question-answering"
OPTION_SETS = ({}, {"top_k": 3}, {"max_seq_len": 32, "doc_stride": 6, "top_k": 2}, {"handle_impossible_answer": True},
               {"max_answer_len": 1, "padding": "max_length"})
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="the tesseract binary is not installed")


@pytest.fixture(scope="module", params=ARCHS)
def pair(request, models):
    arch = request.param
    exported = models._once(f"document-{arch}", TASK, lambda folder: build_document_checkpoint(arch, folder))
    if exported.checkpoint not in models._references:
        models._references[exported.checkpoint] = reference_pipeline(exported.checkpoint)
    image = document_picture() if arch == "layoutlmv3" else None
    return pipeline(TASK, model=str(exported.onnx)), models._references[exported.checkpoint], image


def assert_same_answers(ours, theirs, atol=1e-4):
    assert [(a["answer"], a["start"], a["end"]) for a in ours] == [(a["answer"], a["start"], a["end"]) for a in theirs]
    for a, b in zip(ours, theirs):
        assert set(a) == {"score", "answer", "start", "end"}
        assert abs(a["score"] - b["score"]) <= atol, (a, b)


def test_parity_with_word_boxes_over_questions_and_options(pair):
    ours, theirs, image = pair
    boxes = list(WORD_BOXES)
    for question in QUESTIONS:
        for options in OPTION_SETS:
            assert_same_answers(ours(image=image, question=question, word_boxes=boxes, **options),
                                theirs(image=image, question=question, word_boxes=boxes, **options))


def test_the_question_decides_the_answer(pair):
    ours, _, image = pair
    answers = {ours(image=image, question=q, word_boxes=list(WORD_BOXES))[0]["answer"] for q in QUESTIONS}
    assert len(answers) >= 3, answers  # measured: 5 distinct spans (LayoutLMv3), 3 (LayoutLM)
    one = ours(image=image, question=QUESTIONS[0], word_boxes=list(WORD_BOXES))[0]
    assert " ".join(w for w, _ in WORD_BOXES[one["start"] : one["end"] + 1]) == one["answer"]


def test_call_forms_and_batching_match_transformers(pair):
    ours, theirs, image = pair
    boxes = list(WORD_BOXES)
    item = {"image": image, "question": QUESTIONS[1], "word_boxes": boxes}
    assert_same_answers(ours(item), theirs(item))
    other = {"image": image, "question": QUESTIONS[2], "word_boxes": boxes[:7]}
    got, want = ours([item, other], max_seq_len=32, doc_stride=6, batch_size=3), theirs([item, other], max_seq_len=32, doc_stride=6)
    assert len(got) == len(want) == 2
    for a, b in zip(got, want):
        assert_same_answers(a, b)
    assert_same_answers(ours(image, QUESTIONS[1], boxes), theirs(image, QUESTIONS[1], boxes))


def test_bad_inputs_get_clear_errors(pair):
    ours, _, image = pair
    boxes = list(WORD_BOXES)
    with pytest.raises(InvalidInputError, match="needs a question"):
        ours(image=image)
    with pytest.raises(InvalidInputError, match="needs question= too"):
        ours(image=image, word_boxes=boxes)
    with pytest.raises(InvalidInputError, match="question is empty"):
        ours(image=image, question="  ", word_boxes=boxes)
    with pytest.raises(InvalidInputError, match="needs an image or word_boxes"):
        ours(question="What?")
    with pytest.raises(InvalidInputError, match="word_boxes is empty"):
        ours(image=image, question="What?", word_boxes=[])
    with pytest.raises(InvalidInputError, match=r"word_boxes\[1\].*0-1000"):
        ours(image=image, question="What?", word_boxes=[("a", [0, 0, 10, 10]), ("b", [0, 0, 2000, 10])])
    with pytest.raises(InvalidInputError, match=r"word_boxes\[0\].*four numbers"):
        ours(image=image, question="What?", word_boxes=[("a", [0, 0, 10])])
    with pytest.raises(InvalidInputError, match="unknown"):
        ours({"image": image, "question": "What?", "word_boxes": boxes, "context": "x"})
    with pytest.raises(InvalidInputError, match="empty list"):
        ours([])


@pytest.mark.parametrize("options, match", [
    ({"top_k": 0}, "top_k"), ({"max_answer_len": 0}, "max_answer_len"), ({"padding": "left"}, "padding"),
    ({"lang": 3}, "lang"), ({"doc_stride": 1000}, "doc_stride"), ({"max_seq_len": 4096}, "max_seq_len"),
    ({"handle_impossible_answer": "yes"}, "handle_impossible_answer"), ({"num_beams": 2}, "does not take"),
])
def test_bad_options_get_clear_errors(pair, options, match):
    ours, _, image = pair
    with pytest.raises(InvalidOptionError, match=match):
        ours(image=image, question="What?", word_boxes=list(WORD_BOXES), **options)


def test_max_question_len_warns_it_has_no_effect(pair):
    ours, _, image = pair
    with pytest.warns(UserWarning, match="max_question_len has no effect"):
        got = ours(image=image, question=QUESTIONS[0], word_boxes=list(WORD_BOXES), max_question_len=3)
    assert got == ours(image=image, question=QUESTIONS[0], word_boxes=list(WORD_BOXES))


def test_layoutlmv3_needs_the_image(pair):
    ours, _, image = pair
    if image is None:
        pytest.skip("LayoutLM v1 reads no image")
    with pytest.raises(InvalidInputError, match="pass image="):
        ours(question="What?", word_boxes=list(WORD_BOXES))


def test_task_names():
    assert normalize_task("Document-Question-Answering") == TASK
    assert task_from_architectures(["LayoutLMv3ForQuestionAnswering"]) == TASK
    assert task_from_architectures(["LayoutLMForQuestionAnswering"]) == TASK
    assert task_from_architectures(["BertForQuestionAnswering"]) == "question-answering"


# -- OCR -------------------------------------------------------------------------------------------
KNOWN_TSV = (
    "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"
    "1\t1\t0\t0\t0\t0\t0\t0\t600\t200\t-1\t\n"
    "5\t1\t1\t1\t1\t1\t23\t29\t89\t19\t96.5\tInvoice\n"
    "5\t1\t1\t1\t1\t2\t121\t28\t97\t20\t96.0\t \n"
    "5\t1\t1\t1\t1\t3\t226\t29\t59\t19\t95.1\t4521\n"
    "5\t1\t1\t1\t1\t4\t300\t29\t10\t19\t95.1"
)


def test_tsv_parsing_and_box_normalization():
    columns = ocr.parse_tsv(KNOWN_TSV)
    assert columns["conf"][1] == 96 and columns["text"][-1] == ""  # int(float()); the missing last cell is ""
    words, boxes = ocr.words_and_boxes(columns, 600, 200)
    assert words == ["Invoice", "4521"]
    assert boxes == [[38, 145, 186, 240], [376, 145, 475, 240]]
    assert ocr.parse_tsv("level\tleft\ttext\n") == {} and ocr.words_and_boxes({}, 10, 10) == ([], [])


def test_tsv_parsing_matches_pytesseract():
    pytesseract = pytest.importorskip("pytesseract")
    assert ocr.parse_tsv(KNOWN_TSV) == pytesseract.pytesseract.file_to_dict(KNOWN_TSV, "\t", -1)


def _rendered():
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (600, 200), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=28)
    draw.text((20, 20), "Invoice number 4521", fill="black", font=font)
    draw.text((20, 90), "Total due $28.88", fill="black", font=font)
    return image


@needs_tesseract
def test_ocr_reads_the_words_transformers_reads():
    words, boxes = ocr.ocr_words(_rendered())
    assert words == ["Invoice", "number", "4521", "Total", "due", "$28.88"]
    pytest.importorskip("pytesseract")
    from transformers.pipelines.document_question_answering import apply_tesseract

    assert (words, boxes) == apply_tesseract(_rendered(), lang=None, tesseract_config="")


@needs_tesseract
def test_ocr_path_matches_transformers_on_layoutlm(models):
    pytest.importorskip("pytesseract")
    exported = models._once("document-layoutlm", TASK, lambda folder: build_document_checkpoint("layoutlm", folder))
    ours, theirs = pipeline(TASK, model=str(exported.onnx)), reference_pipeline(exported.checkpoint)
    image = _rendered()
    for question in QUESTIONS[:3]:
        assert_same_answers(ours(image=image, question=question, top_k=2), theirs(image=image, question=question, top_k=2))
    with pytest.raises(InvalidOptionError, match="tesseract failed"):
        ours(image=image, question="What?", lang="no-such-language")


def test_missing_tesseract_names_the_package(models, monkeypatch):
    exported = models._once("document-layoutlm", TASK, lambda folder: build_document_checkpoint("layoutlm", folder))
    ours = pipeline(TASK, model=str(exported.onnx))
    monkeypatch.setattr(ocr.shutil, "which", lambda name: None)
    with pytest.raises(ocr.TesseractMissingError, match="apt-get install tesseract-ocr"):
        ours(image=_rendered(), question="What is the total?")
