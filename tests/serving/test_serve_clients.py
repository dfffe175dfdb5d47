"""Issue 15: the official clients, unchanged, against a real `onnxpipe serve` process: the `openai` client's
embeddings (1,000 inputs in one request) and `models.list()`, and `huggingface_hub.InferenceClient`'s
`text_classification(top_k=2)` and `feature_extraction` on texts of different lengths (on `/hf/models/{name}`,
which answers in the Inference API's shapes)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")
huggingface_hub = pytest.importorskip("huggingface_hub")

from support.live_server import ServerProcess  # noqa: E402


@pytest.fixture(scope="module")
def live(models, tmp_path_factory):
    folders = {"cls": models.get("bert", "text-classification").onnx, "embed": models.get("bert", "feature-extraction").onnx}
    # one request of 1,000 texts: --max-queue 2048 holds it whether a text or the request is one admission
    srv = ServerProcess(folders, tmp_path_factory.mktemp("clients") / "server.log", "--max-queue", "2048")
    yield srv
    srv.stop()


def test_openai_embeddings_with_1000_inputs(live):
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    texts = [f"sentence number {i} " + "word " * (i % 17) for i in range(1000)]
    answer = client.embeddings.create(model="embed", input=texts)
    assert [d.index for d in answer.data] == list(range(1000))
    vectors = np.array([d.embedding for d in answer.data])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert answer.usage.prompt_tokens > 1000
    single = client.embeddings.create(model="embed", input=texts[3])
    np.testing.assert_allclose(single.data[0].embedding, vectors[3], atol=1e-4)


def test_openai_models_list(live):
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    assert sorted(m.id for m in client.models.list()) == ["cls", "embed"]


def test_hf_client_text_classification_top_k(live, online):
    client = huggingface_hub.InferenceClient(model=live.url + "/hf/models/cls", timeout=60)
    labels = client.text_classification("I love this", top_k=2)
    assert len(labels) == 2 and all(isinstance(x.label, str) and 0 <= x.score <= 1 for x in labels)
    assert labels[0].score >= labels[1].score
    assert len(client.text_classification("I love this")) == 1


def test_hf_client_feature_extraction_on_a_list(live, online):
    client = huggingface_hub.InferenceClient(model=live.url + "/hf/models/embed", timeout=60)
    texts = ["short", "a much longer sentence than the first one, with more tokens"]
    vectors = client.feature_extraction(texts)
    assert vectors.dtype == np.float32 and vectors.ndim == 2 and vectors.shape[0] == 2
    one = client.feature_extraction(texts[0])
    np.testing.assert_allclose(one[0], vectors[0], atol=1e-4)
