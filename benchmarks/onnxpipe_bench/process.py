"""The parent's handle on one engine worker process: start it (timing the cold start), send requests, stop it."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from typing import Any, Optional

from .engine_spec import EngineSpec


class WorkerError(RuntimeError):
    """A worker failed to load its engine or to answer; the message ends with its last stderr lines."""


class Worker:
    """A running `python -m onnxpipe_bench.worker` process for one engine."""

    def __init__(self, spec: EngineSpec, first_inputs: list[Any], options: dict[str, Any], timeout: float = 900.0,
                 audio: bool = False):
        """Start the worker, send it the first request and wait for its answer; `cold_start_s` is start to answer.
        `audio`: the first inputs are base64 clips the worker decodes to arrays (JSON carries no arrays)."""
        self.spec = spec
        self.timeout = timeout
        self.log = tempfile.TemporaryFile(mode="w+")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "onnxpipe_bench.worker", json.dumps(asdict(spec))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        self._send({"inputs": first_inputs, "options": options, "audio": audio})
        self.ready = self._receive()
        self.cold_start_s = time.perf_counter() - started

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise WorkerError(self._failure("exited before the request")) from None

    def _receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not ready:
            self.proc.kill()
        answer = json.loads(line) if line.strip() else None
        if answer is None or answer.get("event") == "error" or "error" in answer:
            raise WorkerError(self._failure((answer or {}).get("error", "no answer" if ready else f"timed out after {self.timeout:.0f} s")))
        return answer

    def _failure(self, what: str) -> str:
        self.log.seek(0)
        tail = [line for line in self.log.read().splitlines() if line.strip()][-5:]
        return f"{self.spec.name} worker: {what}" + ("\n  " + "\n  ".join(tail) if tail else "")

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return its answer."""
        self._send(message)
        return self._receive()

    def close(self) -> None:
        """Ask the worker to quit and wait for it (killing it if it hangs)."""
        if self.proc.poll() is None:
            try:
                self._send({"op": "quit"})
                self.proc.wait(timeout=30)
            except (WorkerError, subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self.log.close()


def start_worker(spec: EngineSpec, first_inputs: list[Any], options: dict[str, Any], audio: bool = False) -> tuple[Optional[Worker], Optional[str]]:
    """(worker, None) when the engine loads, else (None, the reason) so the caller can skip it with a note."""
    try:
        return Worker(spec, first_inputs, options, audio=audio), None
    except WorkerError as exc:
        return None, str(exc)
