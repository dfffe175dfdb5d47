"""`"stream": true`: a generation model answers with Server-Sent Events whose pieces make up exactly the text the
pipeline returns; models that cannot stream, list inputs and bad options are 422 before any event
(test_serve_stream_tgi.py drives a real server with huggingface_hub's client)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from onnxpipe import pipeline  # noqa: E402
from onnxpipe.serving.app import create_app  # noqa: E402
from onnxpipe.serving.config import ServeConfig  # noqa: E402
from onnxpipe.serving.protocol import RequestError, parse_inference  # noqa: E402
from onnxpipe.serving.server import load_pipelines  # noqa: E402

PROMPT = "The weather today is"
PARAMS = {"max_new_tokens": 12, "do_sample": False}


@pytest.fixture(scope="module")
def client(generation_models, models):
    gpt2 = generation_models.get("gpt2").onnx
    classifier = models.get("bert", "text-classification").onnx
    config = ServeConfig.from_specs([f"gen={gpt2}", f"cls={classifier}"], dtype="fp32")
    with TestClient(create_app(load_pipelines(config), config)) as test_client:
        yield test_client


def events(response) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in response.iter_lines() if line.startswith("data: ")]


def test_streamed_pieces_make_up_the_generated_text(client, generation_models):
    direct = pipeline("text-generation", model=str(generation_models.get("gpt2").onnx), dtype="fp32")
    want = direct(PROMPT, return_full_text=False, **PARAMS)[0]["generated_text"]
    assert want.strip(), "the tiny model generated nothing: the test would prove nothing"
    with client.stream("POST", "/models/gen", json={"inputs": PROMPT, "parameters": PARAMS, "stream": True}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        got = events(response)
    pieces = [e["token"]["text"] for e in got]
    assert len(pieces) >= 2 and [e["index"] for e in got] == list(range(len(got)))
    # TGI's shape: the last token's event carries the whole text, the others null
    assert "".join(pieces) == want and got[-1]["generated_text"] == want
    assert all(e["generated_text"] is None for e in got[:-1])
    # the same request without "stream" still answers as JSON, as the pipeline returns it
    plain = client.post("/models/gen", json={"inputs": PROMPT, "parameters": PARAMS})
    assert plain.json() == direct(PROMPT, **PARAMS)


@pytest.mark.parametrize("body, needle", [
    ({"inputs": "hello", "stream": True}, "does not stream"),
    ({"inputs": "hello", "stream": "yes"}, "'stream' must be true or false"),
])
def test_models_that_cannot_stream_and_bad_flags_are_422(client, body, needle):
    answer = client.post("/models/cls", json=body)
    assert answer.status_code == 422 and needle in answer.json()["error"]


@pytest.mark.parametrize("body, needle", [
    ({"inputs": [PROMPT, PROMPT], "stream": True}, "one input"),
    ({"inputs": PROMPT, "parameters": {"no_such_option": 1}, "stream": True}, "no_such_option"),
    ({"inputs": PROMPT, "parameters": {"streamer": "x"}, "stream": True}, "streamer"),
])
def test_bad_streamed_requests_fail_before_any_event(client, body, needle):
    answer = client.post("/models/gen", json=body)
    assert answer.status_code == 422 and needle in answer.json()["error"]


def test_ray_deployment_says_streaming_is_the_built_in_servers():
    with pytest.raises(RequestError, match="built-in server"):
        parse_inference(json.dumps({"inputs": "x", "stream": True}).encode())
