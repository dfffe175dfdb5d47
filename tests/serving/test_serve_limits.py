"""A real `onnxpipe serve` with its limits: requests that would take all the memory (a billion beams or returned
sequences, a sampling rate of 2^31 Hz, a WAV whose header claims 1 Hz, too many inputs) are answered 422 naming
the limit and its flag, the server's memory stays flat, /info shows the limits, and flags and --limits FILE set them."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

import httpx  # noqa: E402
from support import audio_checkpoints as ac  # noqa: E402
from support.live_server import ServerProcess, post  # noqa: E402

from onnxpipe.limits import FLAGS, Limits  # noqa: E402
from onnxpipe.serving.command import build_parser  # noqa: E402
from onnxpipe.serving.config import ServeConfig, limits_from  # noqa: E402


@pytest.fixture(scope="module")
def server(models, generation_models, tmp_path_factory):
    folders = {
        "gen": generation_models.get("gpt2").onnx,
        "audio": models._once("audio-wav2vec2-classifier", "audio-classification", ac.build_classifier).onnx,
        "cls": models.get("bert", "text-classification").onnx,
        "embed": models.get("bert", "feature-extraction").onnx,
    }
    folder = tmp_path_factory.mktemp("serve-limits")
    limits_file = folder / "limits.json"
    limits_file.write_text(json.dumps({"max_num_beams": 2, "max_audio_seconds": 30, "max_new_tokens": 512}))
    srv = ServerProcess(folders, folder / "server.log", "--max-batch-size", "4", "--max-inputs-per-request", "4",
                        "--limits", str(limits_file), "--max-new-tokens", "64")
    yield srv
    srv.stop()


def refused(response: httpx.Response, *needles: str) -> None:
    assert response.status_code == 422, response.text
    message = response.json()["error"]
    message = message["message"] if isinstance(message, dict) else message
    for needle in needles:
        assert needle in message, message


def wav_b64(samples: np.ndarray, rate: int) -> str:
    return base64.b64encode(ac.wav_bytes(samples, rate=rate)).decode()


def test_abusive_requests_are_422_naming_the_limit_and_memory_stays_flat(server):
    gen, audio = server.url + "/models/gen", server.url + "/models/audio"
    before = server.rss_mb()
    for _ in range(2):
        refused(post(gen, {"inputs": "Hello", "parameters": {"num_beams": 10**9, "max_new_tokens": 4}}),
                "num_beams=1000000000", "--max-num-beams")
        refused(post(gen, {"inputs": "Hello", "parameters": {"num_return_sequences": 10**9, "max_new_tokens": 4}}),
                "num_return_sequences=1000000000", "--max-num-return-sequences")
        refused(post(gen, {"inputs": "Hello", "parameters": {"max_new_tokens": 10**9}}), "--max-new-tokens")
        refused(post(audio, {"inputs": {"raw": [0.0] * 1000, "sampling_rate": 2147483648}}),
                "2147483648", "--max-sample-rate")
        refused(post(audio, {"inputs": wav_b64(ac.noise(1.0, seed=0), rate=1)}), "--min-sample-rate")  # 32 KB "at 1 Hz"
        refused(post(audio, {"inputs": wav_b64(ac.noise(31.0, seed=0, rate=1000), rate=1000)}), "--max-audio-seconds")
        refused(post(server.url + "/models/cls", {"inputs": ["a", "b", "c", "d", "e"]}), "--max-inputs-per-request")
        refused(post(server.url + "/v1/embeddings", {"input": ["a", "b", "c", "d", "e"], "model": "embed"}),
                "--max-inputs-per-request")
    assert server.rss_mb() - before < 200
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200


def test_requests_within_the_limits_are_answered(server):
    gen = server.url + "/models/gen"
    answer = post(gen, {"inputs": "Hello", "parameters": {"num_beams": 2, "num_return_sequences": 2, "max_new_tokens": 3}})
    assert answer.status_code == 200 and len(answer.json()) == 2
    assert post(server.url + "/models/audio", {"inputs": wav_b64(ac.tone(0.5, 440.0), rate=8000)}).status_code == 200
    assert post(server.url + "/models/cls", {"inputs": ["a", "b", "c", "d"]}).status_code == 200
    refused(post(gen, {"inputs": "Hello", "parameters": {"num_beams": 3, "max_new_tokens": 3}}), "limit of 2")


def test_info_shows_the_limits_from_defaults_the_file_and_the_flags(server):
    limits = httpx.get(server.url + "/info", timeout=10).json()["limits"]
    assert limits == {**Limits().as_dict(), "max_num_beams": 2, "max_audio_seconds": 30, "max_new_tokens": 64,
                      "max_inputs_per_request": 4}


def test_flags_file_and_none(tmp_path):
    args = build_parser().parse_args(["--model", "x", "--max-num-beams", "none", "--max-audio-seconds", "1.5"])
    limits = limits_from(None, {name: getattr(args, name) for name in FLAGS})
    assert limits.max_num_beams is None and limits.max_audio_seconds == 1.5 and limits.max_new_tokens == 1024
    bad = tmp_path / "bad.json"
    bad.write_text('{"max_beams": 3}')
    with pytest.raises(ValueError, match="max_beams"):
        limits_from(str(bad), {})
    with pytest.raises(ValueError, match="--max-batch-size"):
        ServeConfig.from_specs(["x"], max_batch_size=32, limits=Limits(max_inputs_per_request=8))
    assert ServeConfig.from_specs(["x"]).limits == Limits()
