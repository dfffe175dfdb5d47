"""The Ray Serve deployment, for real: a local Ray started on loopback, a bounded concurrent burst, answers equal
to direct pipeline calls, Ray's batching seen in the replica's call sizes, then shut down."""

from __future__ import annotations

import json
import os
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("ray.serve")

from support.checkpoints import VARIED_TEXTS  # noqa: E402
from support.parity import assert_same  # noqa: E402

from onnxpipe import pipeline  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_serve():
    import ray
    from ray import serve

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False)
    try:
        yield port
    finally:
        serve.shutdown()
        ray.shutdown()


def test_ray_deployment_batches_and_answers_like_direct_calls(models, ray_serve):
    from ray import serve

    from onnxpipe.serving.config import ModelSpec, ServeConfig
    from onnxpipe.serving.ray_app import RayOptions, deploy

    folder = models.get("bert", "text-classification").onnx
    config = ServeConfig(models=(ModelSpec("cls", str(folder)),), dtype="fp32", port=ray_serve,
                         max_batch_size=16, max_wait_ms=20)
    urls = deploy(config, RayOptions())
    assert urls == {"cls": f"http://127.0.0.1:{ray_serve}/models/cls"}

    direct = pipeline("text-classification", model=str(folder), dtype="fp32")
    texts = [f"{t} ({i})" for i in range(4) for t in VARIED_TEXTS if t.strip()]
    bodies = [{"inputs": t} for t in texts] + [{"inputs": t, "parameters": {"top_k": None}} for t in texts]
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=16)) as client, ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda b: client.post(urls["cls"], content=json.dumps(b)), bodies))
        bad = client.post(urls["cls"], json={"inputs": "x", "parameters": {"top_k": 0}})
    assert [r.status_code for r in responses] == [200] * len(bodies)
    for body, response in zip(bodies, responses):
        assert_same(response.json(), direct(body["inputs"], **body.get("parameters", {})), 1e-5)
    assert bad.status_code == 422 and bad.json() == {
        "error": "top_k must be a positive int or None (all labels), got 0.", "error_type": "invalid_input"}

    calls = serve.get_app_handle("cls").stats.remote().result()
    assert sum(n * count for n, count in calls.items()) == len(bodies) + 1
    assert max(calls) > 1, calls  # Ray's batching handed the Coalescer several requests at once


def test_build_app_names_its_arguments():
    """`serve run onnxpipe.serving.ray_app:build_app ...` takes model=DIR and known settings; others are refused."""
    from onnxpipe.serving.ray_app import RayOptions, build_app

    with pytest.raises(ValueError, match="build_app takes model=DIR"):
        build_app({"model": "x", "replicas": "3"})
    with pytest.raises(ValueError, match="build_app takes model=DIR"):
        build_app({"name": "x"})
    with pytest.raises(ValueError, match="1 <= --min-replicas <= --max-replicas"):
        RayOptions(min_replicas=3, max_replicas=2)


def test_build_app_takes_the_servers_limits(monkeypatch, tmp_path):
    """The same limits as `onnxpipe serve`: a JSON file, field names as arguments ('none' turns one off)."""
    from onnxpipe.limits import Limits
    from onnxpipe.serving import ray_app

    seen = {}
    monkeypatch.setattr(ray_app, "application", lambda spec, config, options: seen.setdefault("config", config))
    file = tmp_path / "limits.json"
    file.write_text('{"max_num_beams": 2, "max_audio_seconds": 30}')
    ray_app.build_app({"model": "x", "limits": str(file), "max_num_beams": "4", "max_new_tokens": "none",
                       "max_audio_seconds": "12.5"})
    limits = seen["config"].limits
    assert (limits.max_num_beams, limits.max_new_tokens, limits.max_audio_seconds) == (4, None, 12.5)
    assert limits.max_num_return_sequences == Limits().max_num_return_sequences
    with pytest.raises(ValueError, match="max_num_beams expects a number or 'none', got 'many'"):
        ray_app.build_app({"model": "x", "max_num_beams": "many"})
