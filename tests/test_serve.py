"""`onnxpipe serve`: the server in a subprocess on loopback. Every route, answers equal to direct pipeline calls,
batching seen in /metrics, the error table (503, 413, 422, 504, 500, 401), auth, graceful shutdown, a bounded
load test, and the runtime staying free of the web stack."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import checkpoints  # noqa: E402
from checkpoints import VARIED_TEXTS  # noqa: E402
from onnxpipe import pipeline  # noqa: E402
from parity import assert_same  # noqa: E402

ATOL = 1e-5  # batching pads, which changes float rounding slightly
TASKS = {  # served name -> (task, export options)
    "cls": ("text-classification", {}),
    "embed": ("feature-extraction", {}),
    "ner": ("token-classification", {}),
    "qa": ("question-answering", {}),
    "fill": ("fill-mask", {}),
    "nli": ("zero-shot-classification", {"labels": checkpoints.NLI_LABELS}),
}
TEXTS = [t for t in VARIED_TEXTS if t.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m onnxpipe.cli serve ...` on a free loopback port, its log in a file."""

    def __init__(self, folders: dict[str, Path], log: Path, *extra: str, env: Optional[dict] = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        models = [arg for name, folder in folders.items() for arg in ("--model", f"{name}={folder}")]
        self.log_path = log
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "onnxpipe.cli", "serve", *models, "--dtype", "fp32", "--port", str(self.port), *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()

    def metrics(self, headers: Optional[dict] = None) -> str:
        return httpx.get(self.url + "/metrics", headers=headers, timeout=10).text

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == (f"{name}{{{want}}}" if want else name):
            return float(value)
    return 0.0


@pytest.fixture(scope="module")
def folders(models) -> dict[str, Path]:
    return {name: models.get("bert", task, **options).onnx for name, (task, options) in TASKS.items()}


@pytest.fixture(scope="module")
def direct(folders) -> dict[str, Any]:
    """The same pipelines, called directly: the reference for every answer."""
    return {name: pipeline(TASKS[name][0], model=str(folder), dtype="fp32") for name, folder in folders.items()}


@pytest.fixture(scope="module")
def server(folders, tmp_path_factory):
    srv = ServerProcess(folders, tmp_path_factory.mktemp("serve") / "server.log", "--max-wait-ms", "20")
    yield srv
    srv.stop()


def post(url: str, body: Any, headers: Optional[dict] = None, timeout: float = 60) -> httpx.Response:
    return httpx.post(url, content=body if isinstance(body, bytes) else json.dumps(body), headers=headers, timeout=timeout)


# -- routes and parity ---------------------------------------------------------------------------
CASES = [  # (model, inputs, parameters)
    ("cls", "I loved this movie!", None),
    ("cls", "I loved this movie!", {"top_k": None}),
    ("cls", {"text": "Is it open?", "text_pair": "Yes, until nine."}, None),
    ("cls", ["great", "awful", "fine I guess"], {"top_k": 2}),
    ("embed", "hello world", None),
    ("embed", ["hello", "a longer sentence here"], {"pooling": "mean", "normalize": True}),
    ("ner", "My name is Sarah and I live in London", None),
    ("ner", "My name is Sarah and I live in London", {"aggregation_strategy": "simple"}),
    ("qa", {"question": "Where do I live?", "context": "My name is Sarah and I live in London."}, None),
    ("qa", {"question": "Where do I live?", "context": "My name is Sarah and I live in London."}, {"top_k": 2}),
    ("fill", "The capital of France is [MASK].", None),
    ("fill", "The [MASK] of France is [MASK].", {"top_k": 2}),
    ("nli", "The food was great", {"candidate_labels": ["food", "politics"]}),
    ("nli", "The food was great", {"candidate_labels": "food, politics, sport", "multi_label": True}),
]


@pytest.mark.parametrize("name,inputs,params", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_answers_equal_direct_calls(server, direct, name, inputs, params):
    body = {"inputs": inputs, **({"parameters": params} if params is not None else {})}
    response = post(f"{server.url}/models/{name}", body)
    assert response.status_code == 200, response.text
    assert_same(response.json(), direct[name](inputs, **(params or {})), ATOL)


def test_default_model_at_root(server, direct):
    response = post(server.url + "/", {"inputs": "I loved this movie!"})
    assert response.status_code == 200
    assert_same(response.json(), direct["cls"]("I loved this movie!"), ATOL)


def burst(url: str, bodies: list, concurrency: int, headers: Optional[dict] = None) -> list[httpx.Response]:
    """POST every body at once from `concurrency` threads sharing one connection pool."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(timeout=120, limits=limits, headers=headers) as client, ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda body: client.post(url, content=json.dumps(body)), bodies))


@pytest.mark.parametrize("name,make,params", [
    ("cls", lambda t: t, None),
    ("cls", lambda t: {"text": t, "text_pair": "and then?"}, {"top_k": None}),
    ("embed", lambda t: t, {"pooling": "mean"}),
    ("ner", lambda t: t, {"aggregation_strategy": "simple"}),
    ("qa", lambda t: {"question": "What is it?", "context": t}, None),
    ("fill", lambda t: t + " [MASK]", {"top_k": 3}),
    ("nli", lambda t: t, {"candidate_labels": ["food", "travel"]}),
])
def test_concurrent_requests_are_coalesced_and_answers_unchanged(server, direct, name, make, params):
    """A concurrent burst to one model with equal parameters is answered by fewer pipeline calls than requests,
    and every answer equals the direct call on that input alone."""
    before = server.metrics()
    inputs = [make(t) for t in TEXTS * 3]
    bodies = [{"inputs": x, **({"parameters": params} if params else {})} for x in inputs]
    responses = burst(f"{server.url}/models/{name}", bodies, 16)
    assert [r.status_code for r in responses] == [200] * len(bodies), [r.text for r in responses if r.status_code != 200][:3]
    for x, response in zip(inputs, responses):
        assert_same(response.json(), direct[name](x, **(params or {})), ATOL)
    after = server.metrics()
    calls = metric(after, "onnxpipe_batch_size_count", model=name) - metric(before, "onnxpipe_batch_size_count", model=name)
    singles = metric(after, "onnxpipe_batch_size_bucket", model=name, le="1") - metric(
        before, "onnxpipe_batch_size_bucket", model=name, le="1")
    assert calls - singles > 0, "no pipeline call answered more than one request"
    assert calls < len(bodies)


# -- OpenAI-compatible embeddings ----------------------------------------------------------------
def test_openai_embeddings(server, direct):
    texts = ["hello world", "a somewhat longer sentence about embeddings"]
    response = post(server.url + "/v1/embeddings", {"input": texts, "model": "embed"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == "embed"
    assert [d["index"] for d in body["data"]] == [0, 1] and all(d["object"] == "embedding" for d in body["data"])
    expected = direct["embed"](texts, pooling="mean", normalize=True)
    assert_same([d["embedding"] for d in body["data"]], expected, ATOL)
    tokens = sum(len(direct["embed"](t)[0]) for t in texts)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}

    single = post(server.url + "/v1/embeddings", {"input": "hello world", "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(single["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, expected[0], atol=ATOL)


@pytest.mark.parametrize("body,status,needle", [
    ({"input": "x", "dimensions": 8}, 422, "'dimensions'"),
    ({"input": [1, 2, 3]}, 422, "token-id inputs are not supported"),
    ({"input": "x", "model": "cls"}, 422, "is a text-classification model"),
    ({"input": "x", "model": "nope"}, 404, "no model named 'nope'"),
    ({"input": "x", "encoding_format": "int8"}, 422, "encoding_format"),
])
def test_openai_embeddings_errors(server, body, status, needle):
    response = post(server.url + "/v1/embeddings", body)
    assert response.status_code == status
    error = response.json()["error"]
    assert needle in error["message"] and error["code"] == status


# -- health, ready, info, metrics ----------------------------------------------------------------
def test_health_ready_info_metrics(server, folders):
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    assert httpx.get(server.url + "/ready").json()["status"] == "ready"
    info = httpx.get(server.url + "/info").json()
    assert info["default_model"] == "cls" and set(info["models"]) == set(TASKS)
    for name, (task, _) in TASKS.items():
        model = info["models"][name]
        assert model["task"] == task and model["file"] == "model.onnx" and model["dtype"] == "fp32"
        assert model["manifest"]["task"] == task and model["source"] == str(folders[name])
    assert {"python", "onnxpipe", "onnxruntime", "tokenizers", "numpy", "starlette", "uvicorn"} <= set(info["versions"])
    assert info["server"]["max_batch_size"] == 32 and info["server"]["api_key"] is False

    post(server.url + "/models/cls", {"inputs": "x"})
    response = httpx.get(server.url + "/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in ("onnxpipe_requests_total", "onnxpipe_errors_total", "onnxpipe_queue_depth", "onnxpipe_in_flight_requests",
                 "onnxpipe_batch_size_bucket", "onnxpipe_request_duration_seconds_bucket", "onnxpipe_queue_wait_seconds_count",
                 "onnxpipe_pipeline_call_seconds_sum"):
        assert name in text, name
    assert metric(text, "onnxpipe_requests_total", model="cls", route="/models/{name}", code="200") >= 1
    assert metric(text, "onnxpipe_queue_depth", model="cls") == 0


# -- the error table -----------------------------------------------------------------------------
def test_invalid_json_and_bodies_are_422(server):
    for body, needle in [
        (b"{not json", "not valid JSON"),
        ({"text": "x"}, '{"inputs": ..., "parameters": {...}}'),
        ({"inputs": "x", "options": {"wait_for_model": True}}, "unknown field(s) ['options']"),
        ({"inputs": "x", "parameters": [1]}, "'parameters' must be a JSON object"),
        ({"inputs": "x", "parameters": {"inputs": "y"}}, "may not contain ['inputs']"),
    ]:
        response = post(server.url + "/models/cls", body)
        assert response.status_code == 422, response.text
        assert needle in response.json()["error"]


@pytest.mark.parametrize("name,inputs,params", [
    ("cls", 5, None),
    ("cls", "x", {"top_k": 0}),
    ("cls", "x", {"no_such_option": 1}),
    ("embed", "x", {"pooling": "max"}),
    ("nli", "x", None),
    ("fill", "no mask here", None),
])
def test_inputs_the_pipeline_rejects_are_422_with_its_message(server, direct, name, inputs, params):
    with pytest.raises(ValueError) as raised:
        direct[name](inputs, **(params or {}))
    response = post(f"{server.url}/models/{name}", {"inputs": inputs, **({"parameters": params} if params else {})})
    assert response.status_code == 422
    assert response.json() == {"error": str(raised.value), "error_type": "invalid_input"}


def test_a_bad_request_in_a_batch_fails_alone(server, direct):
    """Requests coalesced with an invalid one still get their answers; only the invalid one gets 422."""
    good = [{"inputs": t + " [MASK]"} for t in TEXTS]
    bodies = good + [{"inputs": "no mask"}] + [{"inputs": "a [MASK]"}] * 5
    responses = burst(server.url + "/models/fill", bodies, 16)
    codes = [r.status_code for r in responses]
    assert codes == [200] * len(good) + [422] + [200] * 5
    assert_same(responses[0].json(), direct["fill"](bodies[0]["inputs"]), ATOL)


def test_unknown_models_and_paths_are_404_and_never_loaded(server, folders):
    for path in ("/models/nope", f"/models/{folders['cls'].name}", "/models/..%2F..%2Fetc", "/models/%2Ftmp%2Fx"):
        response = post(server.url + path, {"inputs": "x"})
        assert response.status_code == 404, path
    assert "no model named 'nope'; this server serves: cls, embed" in post(server.url + "/models/nope", {"inputs": "x"}).json()["error"]
    assert set(httpx.get(server.url + "/info").json()["models"]) == set(TASKS)


def test_body_over_the_limit_is_413(server):
    response = post(server.url + "/models/cls", {"inputs": "x" * (1 << 20)})
    assert response.status_code == 413
    assert "larger than 1048576 bytes" in response.json()["error"]
    assert post(server.url + "/models/cls", {"inputs": "still fine"}).status_code == 200


def test_request_past_its_deadline_is_504_and_the_server_goes_on(server):
    before = metric(server.metrics(), "onnxpipe_errors_total", model="cls", kind="deadline_exceeded")
    many = [f"{t} {i}" for i in range(150) for t in TEXTS]
    response = post(server.url + "/models/cls", {"inputs": many}, headers={"X-Request-Timeout": "0.05"})
    assert response.status_code == 504
    assert "deadline of 0.05 s" in response.json()["error"]
    assert metric(server.metrics(), "onnxpipe_errors_total", model="cls", kind="deadline_exceeded") == before + 1
    assert post(server.url + "/models/cls", {"inputs": "x"}).status_code == 200
    bad = post(server.url + "/models/cls", {"inputs": "x"}, headers={"X-Request-Timeout": "soon"})
    assert bad.status_code == 400 and "X-Request-Timeout" in bad.json()["error"]


def test_full_queue_is_503_with_retry_after(folders, tmp_path):
    srv = ServerProcess({"cls": folders["cls"]}, tmp_path / "log", "--max-queue", "1", "--max-batch-size", "1")
    try:
        heavy = {"inputs": [f"{t} {i}" for i in range(20) for t in TEXTS]}
        responses = burst(srv.url + "/models/cls", [heavy] * 12, 12)
        codes = [r.status_code for r in responses]
        assert set(codes) == {200, 503} and codes.count(503) >= 5, codes
        for r in responses:
            if r.status_code == 503:
                assert int(r.headers["Retry-After"]) >= 1
                assert r.json()["error_type"] == "queue_full" and "the queue is full" in r.json()["error"]
        assert metric(srv.metrics(), "onnxpipe_errors_total", model="cls", kind="queue_full") == codes.count(503)
        assert post(srv.url + "/models/cls", {"inputs": "x"}).status_code == 200
    finally:
        srv.stop()


def test_unexpected_error_is_500_and_the_worker_survives():
    """A pipeline that raises something other than its input errors: 500 with a message, and the next request works."""
    from onnxpipe.serving.app import create_app
    from onnxpipe.serving.config import ModelSpec, ServeConfig

    class Flaky:
        task = "text-classification"

        def __call__(self, inputs, **options):
            if inputs == "boom" or (isinstance(inputs, list) and "boom" in inputs):
                raise RuntimeError("kaboom")
            return [{"label": inputs}] if isinstance(inputs, str) else [{"label": x} for x in inputs]

    async def scenario():
        app = create_app({"flaky": Flaky()}, ServeConfig(models=(ModelSpec("flaky", "-"),)))
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                response = await client.post("/models/flaky", json={"inputs": "boom"})
                assert response.status_code == 500
                assert response.json() == {
                    "error": "model 'flaky' failed with an unexpected RuntimeError; the server logged the details.",
                    "error_type": "internal",
                }
                assert (await client.post("/models/flaky", json={"inputs": "fine"})).json() == [{"label": "fine"}]
                assert 'onnxpipe_errors_total{model="flaky",kind="internal"} 1' in (await client.get("/metrics")).text
        finally:
            app.state.server.close()

    asyncio.run(scenario())


# -- auth ----------------------------------------------------------------------------------------
def test_api_key_guards_every_route_but_health(folders, tmp_path):
    srv = ServerProcess({"cls": folders["cls"], "embed": folders["embed"]}, tmp_path / "log", env={"ONNXPIPE_API_KEY": "s3cret"})
    try:
        good, wrong = {"Authorization": "Bearer s3cret"}, {"Authorization": "Bearer nope"}
        assert httpx.get(srv.url + "/health").status_code == 200
        for method, path, body in [("GET", "/ready", None), ("GET", "/info", None), ("GET", "/metrics", None),
                                   ("POST", "/", {"inputs": "x"}), ("POST", "/models/cls", {"inputs": "x"}),
                                   ("POST", "/v1/embeddings", {"input": "x"})]:
            for headers in (None, wrong):
                response = httpx.request(method, srv.url + path, json=body, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert response.headers["WWW-Authenticate"] == "Bearer"
            assert httpx.request(method, srv.url + path, json=body, headers=good).status_code == 200, path
        assert metric(srv.metrics(good), "onnxpipe_errors_total", model="", kind="unauthorized") == 12
    finally:
        srv.stop()


# -- graceful shutdown ---------------------------------------------------------------------------
def test_graceful_shutdown_finishes_in_flight_and_refuses_new(folders, tmp_path):
    srv = ServerProcess({"cls": folders["cls"]}, tmp_path / "log")
    long_inputs = [f"{t} {i}" for i in range(300) for t in TEXTS]
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(r=post(srv.url + "/models/cls", {"inputs": long_inputs})))
    try:
        worker.start()
        deadline = time.monotonic() + 30
        while metric(srv.metrics(), "onnxpipe_in_flight_requests") < 1:
            assert time.monotonic() < deadline, "the long request never started"
            time.sleep(0.01)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        refused = post(srv.url + "/models/cls", {"inputs": "x"})
        assert refused.status_code == 503 and refused.json()["error_type"] == "shutting_down"
        assert refused.headers["Retry-After"] == "1"
        assert httpx.get(srv.url + "/ready").status_code == 503
        worker.join(60)
        assert result["r"].status_code == 200 and len(result["r"].json()) == len(long_inputs)
        assert srv.proc.wait(30) == 0
        assert "draining" in srv.log_path.read_text()
    finally:
        worker.join(1)
        srv.stop()


# -- bounded load --------------------------------------------------------------------------------
RSS_GROWTH_MB = 40  # the second burst may not grow the server's resident memory by more than this


async def _load(url: str, bodies: list, concurrency: int) -> list[int]:
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def one(body):
            async with semaphore:
                return (await client.post(url, json=body)).status_code

        return await asyncio.gather(*(one(b) for b in bodies))


def test_load_2000_requests_at_concurrency_32(folders, tmp_path):
    """Two identical bursts of 2,000 requests: zero errors, bounded time, resident memory flat on the second."""
    srv = ServerProcess({"cls": folders["cls"]}, tmp_path / "log")
    try:
        bodies = [{"inputs": f"{TEXTS[i % len(TEXTS)]} #{i}"} for i in range(2000)]
        timings, rss = [], [srv.rss_mb()]
        for _ in range(2):
            started = time.monotonic()
            codes = asyncio.run(_load(srv.url + "/models/cls", bodies, 32))
            timings.append(time.monotonic() - started)
            assert codes == [200] * len(bodies), sorted(set(codes))
            rss.append(srv.rss_mb())
        assert max(timings) < 120, timings
        assert rss[2] - rss[1] < RSS_GROWTH_MB, rss
        text = srv.metrics()
        assert metric(text, "onnxpipe_requests_total", model="cls", route="/models/{name}", code="200") == 4000
        assert sum(metric(text, "onnxpipe_errors_total", model="cls", kind=k) for k in ("queue_full", "internal")) == 0
    finally:
        srv.stop()


# -- the runtime stays free of the web stack -----------------------------------------------------
def test_runtime_does_not_import_the_web_stack(folders):
    script = (
        "import sys, onnxpipe\n"
        f"onnxpipe.pipeline('text-classification', model={str(folders['cls'])!r})('hi')\n"
        "print(sorted(m for m in ('starlette', 'uvicorn', 'ray', 'httpx', 'onnxpipe.serving') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_serve_without_the_extra_prints_the_install_command(monkeypatch, capsys):
    from onnxpipe import cli
    from onnxpipe.serving import command

    monkeypatch.setattr(command, "missing", lambda modules: ["uvicorn"])
    assert cli.main(["serve", "--model", "some/folder"]) == 1
    assert "pip install 'onnxpipe[serve]'" in capsys.readouterr().err
    assert cli.main(["serve", "--ray", "--model", "some/folder"]) == 1
    assert "pip install 'onnxpipe[ray]'" in capsys.readouterr().err


@pytest.mark.parametrize("args,needle", [
    (["--model", "a=x", "--model", "a=y"], "two models are named ['a']"),
    (["--model", "bad name=x"], "model name 'bad name'"),
    (["--model", "x", "--max-batch-size", "0"], "--max-batch-size must be >= 1"),
    (["--model", "x", "--min-replicas", "2"], "--min-replicas need --ray"),
    (["--model", "x", "--ray", "--drain-timeout", "3"], "--drain-timeout do not apply with --ray"),
])
def test_serve_rejects_bad_options(args, needle, capsys):
    from onnxpipe import cli

    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", *args])
    assert exited.value.code == 2
    assert needle in capsys.readouterr().err


def test_missing_model_folder_fails_at_start(tmp_path, capsys):
    from onnxpipe import cli

    assert cli.main(["serve", "--model", str(tmp_path / "absent"), "--port", str(free_port())]) == 1
    assert "does not exist" in capsys.readouterr().err


# -- the batching logic on its own: generic, no task code ----------------------------------------
class Wrapping:
    """Answers like text-classification: a lone string's result comes wrapped in a list."""

    def __init__(self):
        self.calls: list = []

    def __call__(self, inputs, **options):
        self.calls.append((inputs, options))
        if isinstance(inputs, list):
            return [{"n": len(x), **self.shown(options)} for x in inputs]
        return [{"n": len(inputs), **self.shown(options)}]

    @staticmethod
    def shown(options):
        return {k: v for k, v in options.items() if k != "batch_size"}  # batch size never changes an answer


def test_coalescer_learns_each_kind_once_and_batches_after():
    from onnxpipe.serving.coalesce import Coalescer, Job

    pipe = Wrapping()
    coalescer = Coalescer(pipe, max_batch_size=8)
    first = coalescer.run([Job("a", {}), Job("bb", {}), Job("ccc", {})])
    assert [o.value for o in first] == [[{"n": 1}], [{"n": 2}], [{"n": 3}]]
    assert [c[0] for c in pipe.calls] == ["a", ["a", "a"], ["bb", "ccc"]]  # the probe, then one call for the rest
    coalescer.run([Job("w", {"k": 0})])  # a new kind (parameter names): probed once
    pipe.calls.clear()
    values = [o.value for o in coalescer.run([Job(x, {"k": 1}) for x in ("x", "yy")] + [Job("zzz", {"k": 2})])]
    assert values == [[{"n": 1, "k": 1}], [{"n": 2, "k": 1}], [{"n": 3, "k": 2}]]
    assert [c[0] for c in pipe.calls] == [["x", "yy"], "zzz"]  # other parameter values: not coalesced


def test_coalescer_runs_alone_what_it_cannot_split():
    from onnxpipe.serving.coalesce import ALONE, Coalescer, Job

    class Merging(Wrapping):  # a list answer that is not one result per item
        def __call__(self, inputs, **options):
            self.calls.append((inputs, options))
            return {"total": sum(map(len, inputs))} if isinstance(inputs, list) else {"total": len(inputs)}

    pipe = Merging()
    coalescer = Coalescer(pipe, max_batch_size=8)
    for _ in range(3):
        assert [o.value for o in coalescer.run([Job("ab", {}), Job("c", {})])] == [{"total": 2}, {"total": 1}]
    assert coalescer.rule(Job("x", {}).kind) == ALONE
    pipe.calls.clear()
    coalescer.run([Job("ab", {}), Job("c", {})])
    assert [c[0] for c in pipe.calls] == ["ab", "c"]


def test_coalescer_hands_each_error_to_its_own_request():
    from onnxpipe.errors import InvalidInputError
    from onnxpipe.serving.coalesce import Coalescer, Job

    class Picky(Wrapping):
        def __call__(self, inputs, **options):
            if "bad" in (inputs if isinstance(inputs, list) else [inputs]):
                raise InvalidInputError("no 'bad' please")
            return super().__call__(inputs, **options)

    coalescer = Coalescer(Picky(), max_batch_size=8)
    coalescer.run([Job("warm", {})])
    outcomes = coalescer.run([Job("a", {}), Job("bad", {}), Job("c", {})])
    assert [o.value for o in outcomes] == [[{"n": 1}], None, [{"n": 1}]]
    assert str(outcomes[1].error) == "no 'bad' please"
