"""`onnxpipe serve` under stress and misuse: the error table (422, 404, 413, 504, 503, 500), auth (401), graceful
shutdown, a bounded load test, the runtime staying free of the web stack, and the command's own start-up errors."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from support.live_server import ATOL, TASKS, TEXTS, ServerProcess, burst, free_port, metric, post  # noqa: E402
from support.parity import assert_same  # noqa: E402


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
    ("embed", "x", {"pooling": "median"}),
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
    # 3,600 inputs: past the default --max-inputs-per-request (2048), raised so that the call runs long
    srv = ServerProcess({"cls": folders["cls"]}, tmp_path / "log", "--max-inputs-per-request", "4096")
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
