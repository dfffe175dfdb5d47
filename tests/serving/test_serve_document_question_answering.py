"""document-question-answering over a real `onnxpipe serve`: the Inference API's body {"inputs": {"image",
"question"[, "word_boxes"]}, "parameters": {...}} gives the direct call's answers, on /models and /hf/models;
bad inputs are 422s."""

from __future__ import annotations

import base64
import io
import shutil

import pytest

pytest.importorskip("httpx")
pytest.importorskip("PIL.Image")

from support.document_checkpoints import WORD_BOXES, build_document_checkpoint, document_picture  # noqa: E402
from support.live_server import ServerProcess, post  # noqa: E402

from onnxpipe import pipeline  # noqa: E402

TASK = "document-question-answering"


def _png(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    folders = {
        arch: models._once(f"document-{arch}", TASK, lambda folder, a=arch: build_document_checkpoint(a, folder)).onnx
        for arch in ("layoutlmv3", "layoutlm")
    }
    process = ServerProcess(folders, tmp_path_factory.mktemp("serve") / "log.txt")
    yield process, folders
    process.stop()


def test_answers_equal_direct_calls(server):
    process, folders = server
    image = document_picture()
    boxes = [[word, box] for word, box in WORD_BOXES]
    for arch in folders:
        direct = pipeline(TASK, model=str(folders[arch]), dtype="fp32")
        body = {"inputs": {"image": _png(image), "question": "What is the total?", "word_boxes": boxes}, "parameters": {"top_k": 2}}
        for route in ("/models/", "/hf/models/"):
            answer = post(f"{process.url}{route}{arch}", body)
            assert answer.status_code == 200, answer.text
            expected = direct(image=image, question="What is the total?", word_boxes=list(WORD_BOXES), top_k=2)
            assert [(a["answer"], a["start"], a["end"]) for a in answer.json()] == [(a["answer"], a["start"], a["end"]) for a in expected]
            assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(answer.json(), expected))


def test_bad_inputs_are_422(server):
    process, _ = server
    for inputs in ({"question": "What?"}, {"image": _png(document_picture()), "question": "What?", "word_boxes": []},
                   {"image": _png(document_picture()), "word_boxes": [["a", [0, 0, 1, 1]]]}):
        answer = post(f"{process.url}/models/layoutlmv3", {"inputs": inputs})
        assert answer.status_code == 422, answer.text
        assert "question" in answer.text or "word_boxes" in answer.text or "image" in answer.text


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="the tesseract binary is not installed")
def test_ocr_on_the_server(server):
    from PIL import Image, ImageDraw, ImageFont

    process, folders = server
    image = Image.new("RGB", (600, 200), "white")
    ImageDraw.Draw(image).text((20, 20), "Invoice number 4521 Total $28.88", fill="black", font=ImageFont.load_default(size=28))
    answer = post(f"{process.url}/models/layoutlm", {"inputs": {"image": _png(image), "question": "What is the total?"}})
    assert answer.status_code == 200, answer.text
    assert answer.json() == pipeline(TASK, model=str(folders["layoutlm"]), dtype="fp32")(image=image, question="What is the total?")
