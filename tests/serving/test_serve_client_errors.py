"""Issue 15, defect 5: inputs that are the client's fault answer 422 naming the bad value, never a 500 with a
traceback, and the server answers the next request as before. Also `GET /v1/models` (defect 8) and the
Inference API shapes of `/hf/models/{name}` (defect 7), in-process."""

from __future__ import annotations

import io
import json
import struct
import wave

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402
from support import audio_checkpoints as ac  # noqa: E402
from support import checkpoints  # noqa: E402

from onnxpipe import pipeline  # noqa: E402
from onnxpipe.errors import InvalidInputError, InvalidOptionError  # noqa: E402
from onnxpipe.serving.app import create_app  # noqa: E402
from onnxpipe.serving.config import ServeConfig  # noqa: E402
from onnxpipe.serving.server import load_pipelines  # noqa: E402


@pytest.fixture(scope="module")
def folders(generation_models, models):
    return {
        "gen": generation_models.get("gpt2").onnx,
        "cls": models.get("bert", "text-classification").onnx,
        "embed": models.get("bert", "feature-extraction").onnx,
        "audio": models._once("audio-wav2vec2-classifier", "audio-classification", ac.build_classifier).onnx,
    }


@pytest.fixture(scope="module")
def client(folders):
    config = ServeConfig.from_specs([f"{name}={folder}" for name, folder in folders.items()], dtype="fp32")
    with TestClient(create_app(load_pipelines(config), config), raise_server_exceptions=False) as test_client:
        yield test_client


def _wav(rate: int, samples: int = 1600) -> str:
    """A base64 16-bit mono WAV whose header claims `rate` Hz."""
    import base64

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.zeros(samples, np.int16).tobytes())
    data = bytearray(buffer.getvalue())
    data[24:28] = struct.pack("<I", rate)  # the fmt chunk's sample rate
    return base64.b64encode(bytes(data)).decode()


CASES = [  # (model, body, words the 422 message must hold)
    ("cls", {"inputs": "\ud800"}, ["surrogate", "\\ud800"]),
    ("cls", {"inputs": ["fine", "bad \udfff here"]}, ["surrogate"]),
    ("embed", {"inputs": "x\ud800"}, ["surrogate"]),
    ("gen", {"inputs": "\ud800", "parameters": {"max_new_tokens": 2}}, ["surrogate"]),
    ("gen", {"inputs": [{"role": "user", "content": "hi"}], "parameters": {"max_new_tokens": 2}}, ["no chat template"]),
    ("gen", {"inputs": "hi", "parameters": {"bad_words_ids": [[10**9]]}}, ["bad_words_ids", "1000000000", "vocabulary"]),
    ("gen", {"inputs": "hi", "parameters": {"max_new_tokens": 1e9}}, ["max_new_tokens", "whole number", "float"]),
    ("audio", {"inputs": {"raw": [0.0] * 100, "sampling_rate": "NaN"}}, ["sampling_rate"]),
    ("audio", {"inputs": {"raw": ["a", "b"], "sampling_rate": 16000}}, ["list of numbers", "'a'"]),
    ("audio", {"inputs": {"raw": [[0.1], [0.1, 0.2]], "sampling_rate": 16000}}, ["list of numbers"]),
]


@pytest.mark.parametrize("model,body,words", CASES, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(CASES)])
def test_client_faults_are_422_naming_the_value(client, model, body, words):
    response = client.post(f"/models/{model}", content=json.dumps(body))  # json.dumps keeps lone surrogates escaped
    assert response.status_code == 422, response.text
    message = response.json()["error"]
    for word in words:
        assert word in message, message
    assert client.post("/models/cls", json={"inputs": "still fine"}).status_code == 200


def test_nan_sampling_rate_is_422(client):
    """JSON has no NaN, but Python's json (and many clients) write one: the body parses, the pipeline refuses it."""
    response = client.post("/models/audio", content=b'{"inputs": {"raw": [0.0, 0.1], "sampling_rate": NaN}}')
    assert response.status_code == 422 and "sampling_rate" in response.json()["error"]


def test_wav_header_rate_of_4e9_is_not_a_500(client):
    response = client.post("/models/audio", json={"inputs": _wav(4_000_000_000)})
    assert response.status_code == 422, response.text[:300]


def test_max_length_past_the_model_truncates_with_a_warning(folders):
    classify = pipeline("text-classification", model=str(folders["cls"]), dtype="fp32")
    long_text = "word " * 2000
    with pytest.warns(UserWarning, match="max_length=100000 is longer than the model takes"):
        got = classify(long_text, max_length=100000)
    assert got == classify(long_text)


def test_max_length_past_the_model_is_200_when_served(client):
    response = client.post("/models/cls", json={"inputs": "word " * 2000, "parameters": {"max_length": 100000}})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("body", [
    b"[" * 10_000 + b"]" * 10_000,
    b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"inputs": "x", "parameters": {"top_k": ' + b"9" * 5000 + b"}}",
])
def test_pathological_json_is_a_json_422(client, body):
    response = client.post("/models/cls", content=body)
    assert response.status_code == 422
    assert response.json()["error_type"] == "invalid_json"
    assert client.post("/models/cls", json={"inputs": "still fine"}).status_code == 200


def test_in_process_errors_are_the_library_errors(folders):
    """The same faults raise InvalidInputError / InvalidOptionError from a plain pipeline() call."""
    classify = pipeline("text-classification", model=str(folders["cls"]), dtype="fp32")
    generate = pipeline("text-generation", model=str(folders["gen"]), dtype="fp32")
    with pytest.raises(InvalidInputError, match="surrogate"):
        classify("\ud800")
    with pytest.raises(InvalidInputError, match="no chat template"):
        generate([{"role": "user", "content": "hi"}], max_new_tokens=2)
    with pytest.raises(InvalidOptionError, match="past the model's vocabulary"):
        generate("hi", max_new_tokens=2, bad_words_ids=[[10**9]])
    with pytest.raises(InvalidOptionError, match="whole number"):
        generate("hi", max_new_tokens=1e9)


# -- defect 8: GET /v1/models --------------------------------------------------------------------
def test_v1_models_lists_the_served_models_in_openai_shape(client, folders):
    answer = client.get("/v1/models").json()
    assert answer["object"] == "list"
    assert [m["id"] for m in answer["data"]] == list(folders)
    assert all(m["object"] == "model" and isinstance(m["created"], int) and m["owned_by"] for m in answer["data"])


# -- defect 7: the Inference API's shapes on /hf/models/{name} ---------------------------------------
def test_hf_route_wraps_text_classification_per_input(client):
    one = client.post("/hf/models/cls", json={"inputs": "good", "parameters": {"top_k": 2}}).json()
    assert isinstance(one, list) and len(one) == 1 and len(one[0]) == 2 and {"label", "score"} <= set(one[0][0])
    plain = client.post("/hf/models/cls", json={"inputs": "good"}).json()
    assert len(plain) == 1 and len(plain[0]) == 1
    many = client.post("/hf/models/cls", json={"inputs": ["good", "bad"], "parameters": {"top_k": 2}}).json()
    assert len(many) == 2 and all(len(row) == 2 for row in many)
    # the plain route keeps transformers' shape
    assert len(client.post("/models/cls", json={"inputs": "good", "parameters": {"top_k": 2}}).json()) == 2


def test_hf_route_pools_feature_extraction_per_input(client):
    texts = ["short", "a much longer sentence than the first one"]
    many = np.array(client.post("/hf/models/embed", json={"inputs": texts}).json(), dtype="float32")
    assert many.ndim == 2 and many.shape[0] == 2
    np.testing.assert_allclose(np.linalg.norm(many, axis=1), 1.0, atol=1e-5)
    one = np.array(client.post("/hf/models/embed", json={"inputs": "short"}).json(), dtype="float32")
    np.testing.assert_allclose(one, many[:1], atol=1e-5)


@pytest.mark.parametrize("task,inputs,options", [
    ("feature-extraction", "word " * 2000, {}),
    ("fill-mask", "word " * 2000 + "[MASK]", {}),
    ("zero-shot-classification", "word " * 2000, {"candidate_labels": ["a", "b"]}),
])
def test_max_length_past_the_model_truncates_in_every_text_encoder(models, task, inputs, options):
    extra = {"labels": checkpoints.NLI_LABELS} if task == "zero-shot-classification" else {}
    pipe = pipeline(task, model=str(models.get("bert", task, **extra).onnx), dtype="fp32")
    with pytest.warns(UserWarning, match="max_length=100000 is longer than the model takes"):
        pipe(inputs if task != "fill-mask" else "a [MASK] " + "word " * 2000, max_length=100000, **options)
