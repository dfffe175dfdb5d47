"""TEI's `POST /embed_sparse` on `onnxpipe serve` (issue 17, sections 3-4): per input the non-zero [{index, value}] of a
sparse-embedding (SPLADE) model, or of a hybrid-embedding (BGE-M3) model's lexical weights, equal to direct pipeline
calls, with TEI's error bodies and status codes; 424 when no served model gives sparse vectors. Real servers."""

from __future__ import annotations

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from support.live_server import ServerProcess, post  # noqa: E402
from support.retrieval_folders import retrieval_folders  # noqa: E402

from onnxpipe import pipeline  # noqa: E402

TEXTS = ["hello world", "A man is eating food.", "Café crème, naïve façade; 東京", "ok"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return retrieval_folders(tmp_path_factory)


@pytest.fixture(scope="module")
def server(folders, tmp_path_factory):
    """A SPLADE model served before a feature-extraction one and a BGE-M3 one: /embed_sparse answers with SPLADE."""
    served = {"embed": folders.onnx("base"), "splade": folders.onnx("splade"), "m3": folders.onnx("bge-m3")}
    srv = ServerProcess(served, tmp_path_factory.mktemp("tei-sparse") / "server.log", "--max-client-batch-size", "8")
    yield srv
    srv.stop()


def as_pairs(sparse: dict) -> list[dict]:
    return [{"index": i, "value": v} for i, v in zip(sparse["indices"], sparse["values"])]


def assert_same(answer: list, expected: list) -> None:
    assert len(answer) == len(expected)
    for got, want in zip(answer, expected):
        assert [p["index"] for p in got] == [p["index"] for p in want]
        assert all(abs(g["value"] - w["value"]) <= 1e-5 for g, w in zip(got, want))


def test_embed_sparse_splade(server, folders):
    direct = pipeline("sparse-embedding", model=str(folders.onnx("splade")), dtype="fp32")
    answer = post(server.url + "/embed_sparse", {"inputs": TEXTS})
    assert answer.status_code == 200, answer.text
    assert_same(answer.json(), [as_pairs(s) for s in direct(TEXTS)])
    single = post(server.url + "/embed_sparse", {"inputs": TEXTS[1], "prompt_name": "query"}).json()
    assert_same(single, [as_pairs(direct(TEXTS[1], prompt_name="query"))])
    assert [p["index"] for p in single[0]] == sorted(p["index"] for p in single[0])


def test_embed_sparse_bge_m3(folders, tmp_path):
    srv = ServerProcess({"m3": folders.onnx("bge-m3")}, tmp_path / "server.log")
    try:
        direct = pipeline("hybrid-embedding", model=str(folders.onnx("bge-m3")), dtype="fp32")
        answer = post(srv.url + "/embed_sparse", {"inputs": TEXTS, "truncate": True})
        assert answer.status_code == 200, answer.text
        assert_same(answer.json(), [as_pairs(item["sparse"]) for item in direct(TEXTS, return_dense=False, return_colbert=False)])
        refused = post(srv.url + "/embed_sparse", {"inputs": "x", "prompt_name": "query"})
        assert refused.status_code == 422 and "has no prompts" in refused.json()["error"]
    finally:
        srv.stop()


def test_no_sparse_model_is_424(folders, tmp_path):
    srv = ServerProcess({"embed": folders.onnx("base")}, tmp_path / "server.log")
    try:
        answer = post(srv.url + "/embed_sparse", {"inputs": "hello"})
        assert answer.status_code == 424, answer.text
        assert answer.json()["error_type"] == "backend" and "sparse embedding model" in answer.json()["error"]
    finally:
        srv.stop()


@pytest.mark.parametrize("body, status, error_type, message", [
    ({"inputs": []}, 400, "empty", "`inputs` cannot be empty"),
    ({"inputs": ["x"] * 9}, 413, "validation", "batch size 9 > maximum allowed batch size 8"),
    ({"inputs": "x", "normalize": True}, 422, "validation", "unknown field(s) ['normalize']"),
    ({"inputs": " ".join(["word"] * 200)}, 422, "validation", "truncation=True"),
    ({"inputs": "x", "truncation_direction": "Left"}, 422, "validation", "truncates on the right"),
    ({"inputs": 3}, 422, "validation", "inputs must be a string or a list of strings"),
    ({"inputs": "x", "prompt_name": "nope"}, 422, "validation", "prompt_name='nope'"),
])
def test_errors(server, body, status, error_type, message):
    answer = post(server.url + "/embed_sparse", body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error_type"] == error_type and message in answer.json()["error"], answer.json()
