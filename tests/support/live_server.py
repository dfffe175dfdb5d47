"""A real `onnxpipe serve` for the serving tests: the models it serves, the server in a subprocess on a free
loopback port, and the HTTP helpers the tests talk to it with (POST, concurrent bursts, Prometheus samples).

Imports httpx: import this module only after `pytest.importorskip("httpx")`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import httpx

from support import checkpoints
from support.checkpoints import VARIED_TEXTS

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


def post(url: str, body: Any, headers: Optional[dict] = None, timeout: float = 60) -> httpx.Response:
    return httpx.post(url, content=body if isinstance(body, bytes) else json.dumps(body), headers=headers, timeout=timeout)

def burst(url: str, bodies: list, concurrency: int, headers: Optional[dict] = None) -> list[httpx.Response]:
    """POST every body at once from `concurrency` threads sharing one connection pool."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(timeout=120, limits=limits, headers=headers) as client, ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda body: client.post(url, content=json.dumps(body)), bodies))
