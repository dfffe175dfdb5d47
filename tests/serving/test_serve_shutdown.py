"""Shutdown keeps the README's promise (issue 15, defect 2), on a real `onnxpipe serve` process and real signals:
after SIGTERM the work in flight gets at most --drain-timeout seconds, then it is cancelled and the process exits 0;
a second signal cancels it and stops at once (exit 1). The work is a beam search of about 30 s on the tiny GPT-2."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from support.live_server import ServerProcess, metric, post  # noqa: E402

HEAVY = {"inputs": "Hello", "parameters": {"num_beams": 3000, "max_new_tokens": 100}}  # about 30 s uncancelled


def start(generation_models, tmp_path, *extra: str) -> ServerProcess:
    return ServerProcess({"gen": generation_models.get("gpt2").onnx}, tmp_path / "server.log", "--max-num-beams", "4096",
                         "--timeout", "120", *extra)


def heavy_in_flight(srv: ServerProcess) -> tuple[threading.Thread, dict[str, Any]]:
    """POST the heavy request from a thread; return once the server counts it in flight."""
    result: dict[str, Any] = {}

    def send() -> None:
        try:
            result["response"] = post(srv.url + "/models/gen", HEAVY, timeout=120)
        except Exception as exc:  # noqa: BLE001 - the connection may close as the server stops
            result["error"] = exc

    worker = threading.Thread(target=send)
    worker.start()
    deadline = time.monotonic() + 30
    while metric(srv.metrics(), "onnxpipe_in_flight_requests") < 1:
        assert time.monotonic() < deadline, "the heavy request never started"
        time.sleep(0.02)
    time.sleep(0.5)  # into the beam search
    return worker, result


def test_sigterm_drains_at_most_the_drain_timeout_then_exits_0(generation_models, tmp_path):
    srv = start(generation_models, tmp_path, "--drain-timeout", "2")
    try:
        worker, result = heavy_in_flight(srv)
        signalled = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.proc.wait(30)
        took = time.monotonic() - signalled
        worker.join(10)
        assert code == 0
        assert 2.0 <= took < 6.0, f"exited {took:.2f} s after SIGTERM with --drain-timeout 2"
        print(f"SIGTERM -> exit {took:.2f} s (--drain-timeout 2)")
        response = result.get("response")
        if response is not None:  # the cancelled request is told to retry elsewhere
            assert response.status_code == 503, response.text
        assert "drain timeout of 2 s passed" in srv.log_path.read_text()
    finally:
        srv.stop()


def test_a_second_signal_stops_at_once(generation_models, tmp_path):
    srv = start(generation_models, tmp_path)  # the default drain of 30 s
    try:
        worker, _ = heavy_in_flight(srv)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert srv.proc.poll() is None  # draining: still waiting for the heavy request
        signalled = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.proc.wait(30)
        took = time.monotonic() - signalled
        worker.join(10)
        assert code == 1 and took < 3.0, f"exit {code} {took:.2f} s after the second signal"
        print(f"second SIGTERM -> exit {took:.2f} s")
    finally:
        srv.stop()


def test_ctrl_c_twice_stops_at_once(generation_models, tmp_path):
    srv = start(generation_models, tmp_path)
    try:
        worker, _ = heavy_in_flight(srv)
        srv.proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        signalled = time.monotonic()
        srv.proc.send_signal(signal.SIGINT)
        code = srv.proc.wait(30)
        worker.join(10)
        assert code == 1 and time.monotonic() - signalled < 3.0
    finally:
        srv.stop()


def test_an_idle_server_exits_at_once(generation_models, tmp_path):
    srv = start(generation_models, tmp_path)
    try:
        assert post(srv.url + "/models/gen", {"inputs": "Hi", "parameters": {"max_new_tokens": 2}}).status_code == 200
        signalled = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(30) == 0 and time.monotonic() - signalled < 3.0
    finally:
        srv.stop()


def test_batcher_close_waits_at_most_its_timeout_then_cancels():
    import asyncio

    from onnxpipe.cancellation import raise_if_cancelled
    from onnxpipe.errors import CancelledError
    from onnxpipe.serving.batcher import Batcher
    from onnxpipe.serving.coalesce import Job

    def endless(inputs, **options):
        while True:
            raise_if_cancelled()
            time.sleep(0.01)

    async def scenario():
        batcher = Batcher("m", endless, max_batch_size=1, max_wait_ms=0)
        running = batcher.submit(Job("x", {}))
        queued = batcher.submit(Job("y", {}))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        stopped = await asyncio.get_running_loop().run_in_executor(None, batcher.close, 0.3)
        assert stopped and 0.3 <= time.monotonic() - started < 1.5
        for future in (running, queued):
            assert isinstance((await future).error, CancelledError)

    asyncio.run(scenario())
