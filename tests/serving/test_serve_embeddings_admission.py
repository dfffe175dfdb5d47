"""One embeddings request is one admission (issue 15, defect 3): 1,000 inputs (LangChain's default batch) on an
idle server with --max-queue 256 answer 200 with 1,000 vectors in input order, through httpx and through the
official openai client; the queue limit still refuses requests past it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from support.live_server import TEXTS, ServerProcess, post  # noqa: E402

N = 1000


@pytest.fixture(scope="module")
def embed_server(models, tmp_path_factory):
    folder = models.get("bert", "feature-extraction").onnx
    srv = ServerProcess({"embed": folder}, tmp_path_factory.mktemp("embed") / "server.log", "--max-queue", "256")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [f"{TEXTS[i % len(TEXTS)]} {i}" for i in range(N)]


@pytest.fixture(scope="module")
def direct(models):
    from onnxpipe import pipeline

    return pipeline("feature-extraction", model=str(models.get("bert", "feature-extraction").onnx), dtype="fp32")


def reference(direct, text: str) -> np.ndarray:
    return np.asarray(direct(text, pooling="mean", normalize=True)).reshape(-1)


def test_1000_inputs_past_max_queue_answer_in_order(embed_server, texts, direct):
    answer = post(embed_server.url + "/v1/embeddings", {"input": texts, "model": "embed"}, timeout=120)
    assert answer.status_code == 200, answer.text[:500]
    data = answer.json()["data"]
    assert [d["index"] for d in data] == list(range(N))
    for i in (0, 1, 257, 500, 998, 999):
        np.testing.assert_allclose(data[i]["embedding"], reference(direct, texts[i]), atol=1e-5)


def test_the_openai_client_sends_1000_inputs_without_retrying(embed_server, texts, direct):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=embed_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    result = client.embeddings.create(input=texts, model="embed")
    assert [d.index for d in result.data] == list(range(N))
    np.testing.assert_allclose(result.data[700].embedding, reference(direct, texts[700]), atol=1e-5)


def test_submit_many_checks_room_once_per_request():
    import asyncio

    from onnxpipe.serving.batcher import Batcher, QueueFullError
    from onnxpipe.serving.coalesce import Job

    gate = __import__("threading").Event()

    def pipe(inputs, **options):
        gate.wait(10)
        return [len(x) for x in inputs] if isinstance(inputs, list) else len(inputs)

    async def scenario():
        batcher = Batcher("m", pipe, max_batch_size=1, max_wait_ms=0, max_queue=3)
        try:
            running = batcher.submit(Job("x", {}))
            await asyncio.sleep(0.05)  # the worker holds it; the queue is empty
            many = batcher.submit_many([Job("y" * i, {}) for i in range(1, 11)])  # 10 jobs: one admission
            with pytest.raises(QueueFullError):
                batcher.submit(Job("z", {}))  # now 10 wait: full
            gate.set()
            outcomes = await asyncio.gather(running, *many)
            assert [o.value for o in outcomes] == [1, *range(1, 11)]
        finally:
            gate.set()
            batcher.close(5)

    asyncio.run(scenario())
