"""Streams in text-generation-inference's shape (issue 15, defect 4), on a real `onnxpipe serve` process:
`huggingface_hub.InferenceClient.text_generation(stream=True)` reads to the end (the last token's event carries
`generated_text`), and streams the server refuses are answered 422 as JSON before the first byte, never as a 200
carrying an error event."""

from __future__ import annotations

import json

import httpx
import pytest

pytest.importorskip("starlette")
hub = pytest.importorskip("huggingface_hub")

from support.live_server import ServerProcess  # noqa: E402

from onnxpipe import pipeline  # noqa: E402

PROMPT = "The weather today is"


@pytest.fixture(scope="module")
def gen_server(generation_models, tmp_path_factory):
    srv = ServerProcess({"gen": generation_models.get("gpt2").onnx}, tmp_path_factory.mktemp("tgi") / "server.log")
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def online_client(online):
    """Every test here talks to a loopback server through huggingface_hub (the shared `online` fixture)."""


@pytest.fixture(scope="module")
def direct(generation_models):
    return pipeline("text-generation", model=str(generation_models.get("gpt2").onnx), dtype="fp32")


def test_inference_client_streams_to_the_end(gen_server, direct):
    want = direct(PROMPT, return_full_text=False, max_new_tokens=12, do_sample=False)[0]["generated_text"]
    assert want.strip()
    client = hub.InferenceClient(model=gen_server.url + "/models/gen")
    pieces = list(client.text_generation(PROMPT, max_new_tokens=12, do_sample=False, stream=True))
    assert len(pieces) >= 2 and "".join(pieces) == want
    # the raw events: TGI's shape, generated_text on the last token event only
    with httpx.stream("POST", gen_server.url + "/models/gen", timeout=60, json={
        "inputs": PROMPT, "parameters": {"max_new_tokens": 12, "do_sample": False, "details": False}, "stream": True,
    }) as response:
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    assert [e["token"]["text"] for e in events] == pieces
    assert events[-1]["generated_text"] == want and all(e["generated_text"] is None for e in events[:-1])
    assert [e["index"] for e in events] == list(range(len(events)))


@pytest.mark.parametrize("inputs, params, needle", [
    (PROMPT, {"num_beams": 2}, "num_beams=2 cannot be streamed"),
    (PROMPT, {"num_return_sequences": 2}, "num_return_sequences=2 cannot be streamed"),
    ("", {}, "empty"),
    ("word " * 3000, {"max_new_tokens": 4}, "positions"),
    (PROMPT, {"details": True}, "details"),
], ids=["beams", "sequences", "empty-prompt", "prompt-too-long", "details"])
def test_refused_streams_are_422_before_the_first_byte(gen_server, inputs, params, needle):
    with httpx.stream("POST", gen_server.url + "/models/gen", timeout=60,
                      json={"inputs": inputs, "parameters": params, "stream": True}) as response:
        response.read()
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error_type"] == "invalid_input" and needle in response.json()["error"]


def test_the_client_raises_its_own_error_for_a_refused_stream(gen_server):
    client = hub.InferenceClient(model=gen_server.url + "/models/gen")
    from huggingface_hub.errors import TextGenerationError

    with pytest.raises(TextGenerationError, match="empty"):  # the message, not an AttributeError
        list(client.text_generation("", max_new_tokens=4, stream=True))
