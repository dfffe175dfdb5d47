"""text-ranking (cross-encoder rerankers) at parity with sentence-transformers' CrossEncoder.rank, on tiny BERT and
XLM-R one-logit classifiers exported with `--task text-ranking`."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from support import checkpoints

from onnxpipe import pipeline
from onnxpipe.errors import InvalidInputError, InvalidOptionError

QUERY = "Who wrote the novel about the white whale?"
DOCUMENTS = [
    "Moby-Dick was written by Herman Melville and published in 1851.",
    "The quick brown fox jumps over the lazy dog.",
    "Whales are the largest animals on earth; some sing for hours.",
    "ok",
    "Café crème, naïve façade, São Paulo; 東京は日本の首都です。",
    "A novel is a long work of fiction, and the white whale is its most famous beast.",
    "Le chat dort sur le canapé depuis midi.",
]
QUERIES = [QUERY, "is it raining in paris?", "numbers 3.14 and 2026"]


def ranker_folder(models, arch: str):
    return models._once(
        f"{arch}-text-ranking", "text-ranking",
        lambda folder: checkpoints.build_checkpoint(arch, "sequence-classification", folder, num_labels=1),
    )


@pytest.fixture(scope="module", params=["bert", "xlmr"])
def ranker(request, models):
    return ranker_folder(models, request.param)


@pytest.fixture(scope="module")
def cross_encoder(ranker):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(ranker.checkpoint), device="cpu")


def reference(cross_encoder, query, documents, **options):
    return [{**row, "score": float(row["score"])} for row in cross_encoder.rank(query, documents, **options)]


def assert_same_ranking(ours, theirs, atol):
    assert [r["corpus_id"] for r in ours] == [r["corpus_id"] for r in theirs]
    assert [r.get("text") for r in ours] == [r.get("text") for r in theirs]
    np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=atol, rtol=0)


def test_scores_depend_on_the_pair(ranker):
    ours = pipeline("text-ranking", model=str(ranker.onnx), dtype="fp32")
    scores = {q: [r["score"] for r in sorted(ours(q, DOCUMENTS), key=lambda r: r["corpus_id"])] for q in QUERIES}
    assert min(np.std(s) for s in scores.values()) > 0.02, scores  # documents are told apart
    orders = {tuple(np.argsort(s)) for s in scores.values()}
    assert len(orders) >= 2, scores  # and the query matters


@pytest.mark.parametrize("query", QUERIES)
def test_fp32_parity_with_cross_encoder_rank(ranker, cross_encoder, query):
    ours = pipeline("text-ranking", model=str(ranker.onnx), dtype="fp32")
    assert_same_ranking(ours(query, DOCUMENTS, return_documents=True),
                        reference(cross_encoder, query, DOCUMENTS, return_documents=True), 1e-5)
    assert_same_ranking(ours(query, DOCUMENTS, top_k=3), reference(cross_encoder, query, DOCUMENTS, top_k=3), 1e-5)


def test_raw_scores_are_the_logits(ranker, cross_encoder):
    import torch

    ours = pipeline("text-ranking", model=str(ranker.onnx), dtype="fp32", raw_scores=True)
    theirs = cross_encoder.rank(QUERY, DOCUMENTS, activation_fn=torch.nn.Identity())
    assert_same_ranking(ours(QUERY, DOCUMENTS), [{**r, "score": float(r["score"])} for r in theirs], 1e-4)  # logits up to ~4
    assert min(r["score"] for r in ours(QUERY, DOCUMENTS)) < 0 < max(r["score"] for r in ours(QUERY, DOCUMENTS))


def test_int8_keeps_the_order_close(ranker, cross_encoder):
    ours = pipeline("text-ranking", model=str(ranker.onnx), dtype="int8")
    for query in QUERIES:
        mine, theirs = ours(query, DOCUMENTS), reference(cross_encoder, query, DOCUMENTS)
        by_id = {r["corpus_id"]: r["score"] for r in theirs}
        # measured on these tiny random rerankers (hidden size 32), x86-vnni: sigmoid scores differ from torch's by
        # 0.022-0.067, the best document is the same for all 6 queries, and 5 of 6 rankings are identical
        assert max(abs(r["score"] - by_id[r["corpus_id"]]) for r in mine) < 0.1
        assert mine[0]["corpus_id"] == theirs[0]["corpus_id"]


def test_manifest_records_the_order_agreement(ranker):
    manifest = json.loads((ranker.onnx / "onnxpipe.json").read_text())
    assert manifest["task"] == "text-ranking"
    validation = manifest["files"]["model_quantized.onnx"]["validation"]
    assert 0.8 <= validation["order_agreement"] <= 1.0
    assert validation["acceptance"]["figure"] == "order_agreement"
    assert manifest["files"]["model.onnx"]["validation"]["order_agreement"] == 1.0


def test_input_forms_and_batching(ranker):
    ours = pipeline("text-ranking", model=str(ranker.onnx), dtype="fp32")
    single = ours(QUERY, DOCUMENTS)
    assert ours(query=QUERY, documents=DOCUMENTS) == single
    assert ours({"query": QUERY, "documents": DOCUMENTS}) == single
    several = ours([{"query": q, "documents": DOCUMENTS} for q in QUERIES], batch_size=4)
    assert len(several) == 3
    assert_same_ranking(several[0], single, 1e-5)  # padded with the other queries' pairs
    one_at_a_time = ours(QUERY, DOCUMENTS, batch_size=1)
    np.testing.assert_allclose([r["score"] for r in one_at_a_time], [r["score"] for r in single], atol=1e-5)
    [only] = ours(QUERY, ["only one"])
    assert set(only) == {"corpus_id", "score"} and only["corpus_id"] == 0 and isinstance(only["score"], float)


def test_long_documents_are_truncated_with_a_warning(ranker, cross_encoder):
    ours = pipeline("text-ranking", model=str(ranker.onnx), dtype="fp32")
    long = " ".join(["the long document goes on"] * 200)
    with pytest.warns(UserWarning, match="truncated"):
        mine = ours(QUERY, [long, DOCUMENTS[0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same_ranking(mine, reference(cross_encoder, QUERY, [long, DOCUMENTS[0]]), 1e-5)
    with pytest.raises(InvalidInputError, match="truncation=True"):
        ours(QUERY, [long], truncation=False)


def test_the_configured_activation_is_used(tmp_path, models):
    """A cross-encoder saved with `activation_fn: Identity` (as recent rerankers are) gives its logits."""
    exported = ranker_folder(models, "bert")
    folder = tmp_path / "identity"
    shutil.copytree(exported.onnx, folder)
    config = json.loads((folder / "config.json").read_text())
    config["sentence_transformers"] = {"activation_fn": "torch.nn.modules.linear.Identity"}
    (folder / "config.json").write_text(json.dumps(config))
    raw = pipeline("text-ranking", model=str(exported.onnx), dtype="fp32", raw_scores=True)(QUERY, DOCUMENTS)
    assert pipeline("text-ranking", model=str(folder), dtype="fp32")(QUERY, DOCUMENTS) == raw
    config["sentence_transformers"] = {"activation_fn": "my_package.Custom"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidOptionError, match="my_package.Custom.*raw_scores=True"):
        pipeline("text-ranking", model=str(folder))


def test_bad_input_gets_clear_errors(ranker, models):
    ours = pipeline("text-ranking", model=str(ranker.onnx), dtype="fp32")
    with pytest.raises(InvalidInputError, match="documents is empty"):
        ours(QUERY, [])
    with pytest.raises(InvalidInputError, match="query must be a string, got int"):
        ours(42, DOCUMENTS)
    with pytest.raises(InvalidInputError, match=r"documents\[1\] must be a string, got NoneType"):
        ours(QUERY, ["a", None])
    with pytest.raises(InvalidInputError, match="documents must be a list of strings, got str"):
        ours(QUERY, "one document")
    with pytest.raises(InvalidInputError, match="takes {'query': str"):
        ours({"query": QUERY})
    with pytest.raises(TypeError, match="needs both query and documents"):
        ours(query=QUERY)
    with pytest.raises(InvalidOptionError, match="top_k must be a positive int"):
        ours(QUERY, DOCUMENTS, top_k=0)
    with pytest.raises(InvalidOptionError, match="does not take"):
        ours(QUERY, DOCUMENTS, apply_softmax=True)
    three_labels = models.get("bert", "text-classification").onnx
    with pytest.raises(InvalidOptionError, match="one output score.*3 labels.*text-classification"):
        pipeline("text-ranking", model=str(three_labels))


def test_served_in_the_inference_api_shape(models, tmp_path):
    """`onnxpipe serve`: {"inputs": {"query", "documents"}} answers the pipeline's ranking; concurrent requests are
    batched together and answered unchanged; bad input is a 422."""
    pytest.importorskip("starlette")
    from support.live_server import ServerProcess, burst, post

    folder = ranker_folder(models, "bert").onnx
    direct = pipeline("text-ranking", model=str(folder), dtype="fp32")
    srv = ServerProcess({"rank": folder}, tmp_path / "server.log", "--max-wait-ms", "20")
    try:
        url = srv.url + "/models/rank"
        answer = post(url, {"inputs": {"query": QUERY, "documents": DOCUMENTS}, "parameters": {"top_k": 2}})
        assert answer.status_code == 200, answer.text
        assert_same_ranking(answer.json(), direct(QUERY, DOCUMENTS, top_k=2), 1e-5)
        bodies = [{"inputs": {"query": q, "documents": DOCUMENTS[i:]}} for i, q in enumerate(QUERIES * 2)]
        for body, response in zip(bodies, burst(url, bodies, concurrency=6)):
            assert response.status_code == 200, response.text
            assert_same_ranking(response.json(), direct(**body["inputs"]), 1e-5)
        refused = post(url, {"inputs": {"query": QUERY, "documents": []}})
        assert refused.status_code == 422 and "documents is empty" in refused.json()["error"]
        clash = post(url, {"inputs": {"query": QUERY, "documents": DOCUMENTS}, "parameters": {"query": "x"}})
        assert clash.status_code == 422 and "query" in clash.json()["error"]
    finally:
        srv.stop()
