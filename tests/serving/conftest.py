"""Fixtures shared by the serving tests that run a real `onnxpipe serve`: the tiny exported models it serves,
the same pipelines called directly (the reference for every answer), and the server itself (one per module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def folders(models) -> dict[str, Path]:
    from support.live_server import TASKS

    return {name: models.get("bert", task, **options).onnx for name, (task, options) in TASKS.items()}


@pytest.fixture(scope="module")
def direct(folders) -> dict[str, Any]:
    """The same pipelines, called directly: the reference for every answer."""
    from support.live_server import TASKS

    from onnxpipe import pipeline

    return {name: pipeline(TASKS[name][0], model=str(folder), dtype="fp32") for name, folder in folders.items()}


@pytest.fixture(scope="module")
def server(folders, tmp_path_factory):
    from support.live_server import ServerProcess

    srv = ServerProcess(folders, tmp_path_factory.mktemp("serve") / "server.log", "--max-wait-ms", "20")
    yield srv
    srv.stop()


@pytest.fixture
def online(monkeypatch):
    """The test session runs with HF_HUB_OFFLINE=1, which makes huggingface_hub refuse every URL, loopback too:
    lift it for the client's own session (nothing here reaches past 127.0.0.1)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import reset_sessions

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    reset_sessions()
    yield
    monkeypatch.undo()
    reset_sessions()
