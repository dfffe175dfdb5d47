"""text-embeddings-inference's routes on `onnxpipe serve` (issue 17, section 4): /embed, /rerank, /predict,
/similarity, /tokenize, /decode and TEI's keys in /info answer in TEI's shapes, equal to direct pipeline calls, with
TEI's error bodies and status codes."""

from __future__ import annotations

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from support import checkpoints  # noqa: E402
from support.live_server import ServerProcess, post  # noqa: E402

from onnxpipe import pipeline  # noqa: E402

TEXTS = ["hello world", "A man is eating food.", "Café crème, naïve façade; 東京", "ok"]


@pytest.fixture(scope="module")
def tei_folders(models):
    ranker = models._once("bert-text-ranking", "text-ranking", lambda folder: checkpoints.build_checkpoint(
        "bert", "sequence-classification", folder, num_labels=1))
    return {"embed": models.get("bert", "feature-extraction").onnx, "rank": ranker.onnx,
            "cls": models.get("bert", "text-classification").onnx}


@pytest.fixture(scope="module")
def tei(tei_folders, tmp_path_factory):
    srv = ServerProcess(tei_folders, tmp_path_factory.mktemp("tei") / "server.log", "--max-client-batch-size", "8")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def direct(tei_folders):
    return {name: pipeline(task, model=str(tei_folders[name]), dtype="fp32")
            for name, task in (("embed", "feature-extraction"), ("rank", "text-ranking"), ("cls", "text-classification"))}


def test_embed(tei, direct):
    answer = post(tei.url + "/embed", {"inputs": TEXTS})
    assert answer.status_code == 200, answer.text
    expected = np.asarray(direct["embed"](TEXTS, pooling="mean", normalize=True))
    np.testing.assert_allclose(np.asarray(answer.json()), expected, atol=1e-5)
    single = post(tei.url + "/embed", {"inputs": TEXTS[0], "normalize": False}).json()
    assert len(single) == 1
    np.testing.assert_allclose(single[0], direct["embed"](TEXTS[0], pooling="mean"), atol=1e-5)
    cut = np.asarray(post(tei.url + "/embed", {"inputs": TEXTS, "dimensions": 8}).json())
    raw = np.asarray(direct["embed"](TEXTS, pooling="mean"))[:, :8]
    np.testing.assert_allclose(cut, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)


def test_rerank(tei, direct):
    body = {"query": "who eats food?", "texts": TEXTS, "return_text": True}
    answer = post(tei.url + "/rerank", body)
    assert answer.status_code == 200, answer.text
    expected = direct["rank"]("who eats food?", TEXTS, return_documents=True)
    assert [r["index"] for r in answer.json()] == [r["corpus_id"] for r in expected]
    assert [r["text"] for r in answer.json()] == [r["text"] for r in expected]
    np.testing.assert_allclose([r["score"] for r in answer.json()], [r["score"] for r in expected], atol=1e-5)
    raw = post(tei.url + "/rerank", {"query": "who eats food?", "texts": TEXTS, "raw_scores": True}).json()
    assert set(raw[0]) == {"index", "score"} and min(r["score"] for r in raw) < 0  # logits, no text


def test_predict(tei, direct):
    one = post(tei.url + "/predict", {"inputs": TEXTS[1]})
    assert one.status_code == 200, one.text
    expected = direct["cls"](TEXTS[1], top_k=None)
    assert [r["label"] for r in one.json()] == [r["label"] for r in expected]
    np.testing.assert_allclose([r["score"] for r in one.json()], [r["score"] for r in expected], atol=1e-5)
    pair = post(tei.url + "/predict", {"inputs": ["Is it open?", "Yes, until nine."], "raw_scores": True}).json()
    expected = direct["cls"]({"text": "Is it open?", "text_pair": "Yes, until nine."}, top_k=None, function_to_apply="none")
    np.testing.assert_allclose([r["score"] for r in pair], [r["score"] for r in expected], atol=1e-4)
    batch = post(tei.url + "/predict", {"inputs": [[TEXTS[0]], ["Is it open?", "Yes."]]}).json()
    assert len(batch) == 2 and all(len(rows) == 3 for rows in batch)


def test_similarity(tei, direct):
    body = {"inputs": {"source_sentence": TEXTS[1], "sentences": TEXTS}}
    answer = post(tei.url + "/similarity", body)
    assert answer.status_code == 200, answer.text
    vectors = np.asarray(direct["embed"](TEXTS, pooling="mean", normalize=True))
    np.testing.assert_allclose(answer.json(), vectors @ vectors[1], atol=1e-5)
    assert answer.json()[1] == pytest.approx(1.0, abs=1e-5)


def test_tokenize_and_decode(tei, direct):
    text = "Café crème"
    answer = post(tei.url + "/tokenize", {"inputs": text})
    assert answer.status_code == 200, answer.text
    [tokens] = answer.json()
    assert tokens[0]["special"] and tokens[0]["start"] is None and tokens[-1]["special"]
    words = [t for t in tokens if not t["special"]]
    assert all(text.encode()[t["start"]:t["stop"]].decode() == t["text"] for t in words)
    assert words[-1]["stop"] == len(text.encode())  # byte offsets, as TEI gives them
    plain = post(tei.url + "/tokenize", {"inputs": [text, "ok"], "add_special_tokens": False}).json()
    assert len(plain) == 2 and not any(t["special"] for t in plain[0])
    ids = [t["id"] for t in tokens]
    decoded = post(tei.url + "/decode", {"ids": ids}).json()
    assert decoded == [direct["embed"].encoder.decode(ids, skip_special_tokens=True)]
    assert len(post(tei.url + "/decode", {"ids": [ids, ids[:2]], "skip_special_tokens": False}).json()) == 2


def test_info_carries_teis_keys(tei):
    info = httpx.get(tei.url + "/info").json()
    assert info["max_client_batch_size"] == 8 and info["auto_truncate"] is False
    assert "reranker" in info["model_type"] and info["max_input_length"] == checkpoints.MAXLEN
    assert "models" in info  # onnxpipe's own keys stay


@pytest.mark.parametrize("route,body,status,error_type,words", [
    ("/embed", {"inputs": []}, 400, "empty", "`inputs` cannot be empty"),
    ("/embed", {"inputs": ["x"] * 9}, 413, "validation", "batch size 9 > maximum allowed batch size 8"),
    ("/embed", {"inputs": "x", "normalise": True}, 422, "validation", "unknown field(s) ['normalise']"),
    ("/embed", {"inputs": " ".join(["word"] * 200)}, 422, "validation", "truncation=True"),
    ("/embed", {"inputs": "x", "dimensions": 0}, 422, "validation", "dimensions must be an int"),
    ("/embed", {"inputs": "x", "truncation_direction": "Left"}, 422, "validation", "truncates on the right"),
    ("/rerank", {"query": "q", "texts": []}, 400, "empty", "`texts` cannot be empty"),
    ("/rerank", {"query": 3, "texts": ["a"]}, 422, "validation", "query must be a string"),
    ("/rerank", {"texts": ["a"]}, 422, "validation", "missing field(s) ['query']"),
    ("/predict", {"inputs": ["a", "b", "c"]}, 422, "validation", "a pair has 2 strings"),
    ("/similarity", {"inputs": {"source_sentence": "a"}}, 422, "validation", "source_sentence"),
    ("/decode", {"ids": [10**9]}, 422, "validation", "outside the vocabulary"),
    ("/tokenize", {"inputs": 5}, 422, "validation", "must be a string or a list of strings"),
])
def test_errors_in_teis_shape(tei, route, body, status, error_type, words):
    answer = post(tei.url + route, body)
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"error", "error_type"}
    assert answer.json()["error_type"] == error_type and words in answer.json()["error"]


def test_a_route_without_its_model_is_424(models, tmp_path):
    srv = ServerProcess({"embed": models.get("bert", "feature-extraction").onnx}, tmp_path / "server.log")
    try:
        answer = post(srv.url + "/rerank", {"query": "q", "texts": ["a"]})
        assert answer.status_code == 424 and answer.json()["error_type"] == "backend"
        assert "no served model is a re-ranker" in answer.json()["error"]
    finally:
        srv.stop()
