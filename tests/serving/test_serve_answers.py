"""`onnxpipe serve` answers: every route (the task routes, the default model at /, OpenAI-compatible embeddings,
health, ready, info, metrics) answers like direct pipeline calls, concurrent requests are coalesced into batches
(seen in /metrics), and the batching logic on its own."""

from __future__ import annotations

import base64

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from support.live_server import ATOL, TASKS, TEXTS, burst, metric, post  # noqa: E402
from support.parity import assert_same  # noqa: E402

# -- routes and parity ---------------------------------------------------------------------------
CASES = [  # (model, inputs, parameters)
    ("cls", "I loved this movie!", None),
    ("cls", "I loved this movie!", {"top_k": None}),
    ("cls", {"text": "Is it open?", "text_pair": "Yes, until nine."}, None),
    ("cls", ["great", "awful", "fine I guess"], {"top_k": 2}),
    ("embed", "hello world", None),
    ("embed", ["hello", "a longer sentence here"], {"pooling": "mean", "normalize": True}),
    ("ner", "My name is Sarah and I live in London", None),
    ("ner", "My name is Sarah and I live in London", {"aggregation_strategy": "simple"}),
    ("qa", {"question": "Where do I live?", "context": "My name is Sarah and I live in London."}, None),
    ("qa", {"question": "Where do I live?", "context": "My name is Sarah and I live in London."}, {"top_k": 2}),
    ("fill", "The capital of France is [MASK].", None),
    ("fill", "The [MASK] of France is [MASK].", {"top_k": 2}),
    ("nli", "The food was great", {"candidate_labels": ["food", "politics"]}),
    ("nli", "The food was great", {"candidate_labels": "food, politics, sport", "multi_label": True}),
]


@pytest.mark.parametrize("name,inputs,params", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_answers_equal_direct_calls(server, direct, name, inputs, params):
    body = {"inputs": inputs, **({"parameters": params} if params is not None else {})}
    response = post(f"{server.url}/models/{name}", body)
    assert response.status_code == 200, response.text
    assert_same(response.json(), direct[name](inputs, **(params or {})), ATOL)


def test_default_model_at_root(server, direct):
    response = post(server.url + "/", {"inputs": "I loved this movie!"})
    assert response.status_code == 200
    assert_same(response.json(), direct["cls"]("I loved this movie!"), ATOL)

@pytest.mark.parametrize("name,make,params", [
    ("cls", lambda t: t, None),
    ("cls", lambda t: {"text": t, "text_pair": "and then?"}, {"top_k": None}),
    ("embed", lambda t: t, {"pooling": "mean"}),
    ("ner", lambda t: t, {"aggregation_strategy": "simple"}),
    ("qa", lambda t: {"question": "What is it?", "context": t}, None),
    ("fill", lambda t: t + " [MASK]", {"top_k": 3}),
    ("nli", lambda t: t, {"candidate_labels": ["food", "travel"]}),
])
def test_concurrent_requests_are_coalesced_and_answers_unchanged(server, direct, name, make, params):
    """A concurrent burst to one model with equal parameters is answered by fewer pipeline calls than requests,
    and every answer equals the direct call on that input alone."""
    before = server.metrics()
    inputs = [make(t) for t in TEXTS * 3]
    bodies = [{"inputs": x, **({"parameters": params} if params else {})} for x in inputs]
    responses = burst(f"{server.url}/models/{name}", bodies, 16)
    assert [r.status_code for r in responses] == [200] * len(bodies), [r.text for r in responses if r.status_code != 200][:3]
    for x, response in zip(inputs, responses):
        assert_same(response.json(), direct[name](x, **(params or {})), ATOL)
    after = server.metrics()
    calls = metric(after, "onnxpipe_batch_size_count", model=name) - metric(before, "onnxpipe_batch_size_count", model=name)
    singles = metric(after, "onnxpipe_batch_size_bucket", model=name, le="1") - metric(
        before, "onnxpipe_batch_size_bucket", model=name, le="1")
    assert calls - singles > 0, "no pipeline call answered more than one request"
    assert calls < len(bodies)


# -- OpenAI-compatible embeddings ----------------------------------------------------------------
def test_openai_embeddings(server, direct):
    texts = ["hello world", "a somewhat longer sentence about embeddings"]
    response = post(server.url + "/v1/embeddings", {"input": texts, "model": "embed"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == "embed"
    assert [d["index"] for d in body["data"]] == [0, 1] and all(d["object"] == "embedding" for d in body["data"])
    expected = direct["embed"](texts, pooling="mean", normalize=True)
    assert_same([d["embedding"] for d in body["data"]], expected, ATOL)
    tokens = sum(len(direct["embed"](t)[0]) for t in texts)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}

    single = post(server.url + "/v1/embeddings", {"input": "hello world", "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(single["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, expected[0], atol=ATOL)
    short = post(server.url + "/v1/embeddings", {"input": "hello world", "dimensions": 8}).json()["data"][0]["embedding"]
    cut = np.asarray(expected[0][:8])
    np.testing.assert_allclose(short, cut / np.linalg.norm(cut), atol=ATOL)  # Matryoshka: cut, then normalized


@pytest.mark.parametrize("body,status,needle", [
    ({"input": "x", "dimensions": 0}, 422, "dimensions must be a positive int"),
    ({"input": "x", "dimensions": 100000}, 422, "dimensions=100000 is above the model's"),
    ({"input": "x", "user": "me"}, 422, "'user'"),
    ({"input": [1, 2, 3]}, 422, "token-id inputs are not supported"),
    ({"input": "x", "model": "cls"}, 422, "is a text-classification model"),
    ({"input": "x", "model": "nope"}, 404, "no model named 'nope'"),
    ({"input": "x", "encoding_format": "int8"}, 422, "encoding_format"),
])
def test_openai_embeddings_errors(server, body, status, needle):
    response = post(server.url + "/v1/embeddings", body)
    assert response.status_code == status
    error = response.json()["error"]
    assert needle in error["message"] and error["code"] == status


# -- health, ready, info, metrics ----------------------------------------------------------------
def test_health_ready_info_metrics(server, folders):
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    assert httpx.get(server.url + "/ready").json()["status"] == "ready"
    info = httpx.get(server.url + "/info").json()
    assert info["default_model"] == "cls" and set(info["models"]) == set(TASKS)
    for name, (task, _) in TASKS.items():
        model = info["models"][name]
        assert model["task"] == task and model["file"] == "model.onnx" and model["dtype"] == "fp32"
        assert model["manifest"]["task"] == task and model["source"] == str(folders[name])
    assert {"python", "onnxpipe", "onnxruntime", "tokenizers", "numpy", "starlette", "uvicorn"} <= set(info["versions"])
    assert info["server"]["max_batch_size"] == 32 and info["server"]["api_key"] is False

    post(server.url + "/models/cls", {"inputs": "x"})
    response = httpx.get(server.url + "/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in ("onnxpipe_requests_total", "onnxpipe_errors_total", "onnxpipe_queue_depth", "onnxpipe_in_flight_requests",
                 "onnxpipe_batch_size_bucket", "onnxpipe_request_duration_seconds_bucket", "onnxpipe_queue_wait_seconds_count",
                 "onnxpipe_pipeline_call_seconds_sum"):
        assert name in text, name
    assert metric(text, "onnxpipe_requests_total", model="cls", route="/models/{name}", code="200") >= 1
    assert metric(text, "onnxpipe_queue_depth", model="cls") == 0

# -- the batching logic on its own: generic, no task code ----------------------------------------
class Wrapping:
    """Answers like text-classification: a lone string's result comes wrapped in a list."""

    def __init__(self):
        self.calls: list = []

    def __call__(self, inputs, **options):
        self.calls.append((inputs, options))
        if isinstance(inputs, list):
            return [{"n": len(x), **self.shown(options)} for x in inputs]
        return [{"n": len(inputs), **self.shown(options)}]

    @staticmethod
    def shown(options):
        return {k: v for k, v in options.items() if k != "batch_size"}  # batch size never changes an answer


def test_coalescer_learns_each_kind_once_and_batches_after():
    from onnxpipe.serving.coalesce import Coalescer, Job

    pipe = Wrapping()
    coalescer = Coalescer(pipe, max_batch_size=8)
    first = coalescer.run([Job("a", {}), Job("bb", {}), Job("ccc", {})])
    assert [o.value for o in first] == [[{"n": 1}], [{"n": 2}], [{"n": 3}]]
    assert [c[0] for c in pipe.calls] == ["a", ["a", "a"], ["bb", "ccc"]]  # the probe, then one call for the rest
    coalescer.run([Job("w", {"k": 0})])  # a new kind (parameter names): probed once
    pipe.calls.clear()
    values = [o.value for o in coalescer.run([Job(x, {"k": 1}) for x in ("x", "yy")] + [Job("zzz", {"k": 2})])]
    assert values == [[{"n": 1, "k": 1}], [{"n": 2, "k": 1}], [{"n": 3, "k": 2}]]
    assert [c[0] for c in pipe.calls] == [["x", "yy"], "zzz"]  # other parameter values: not coalesced


def test_coalescer_runs_alone_what_it_cannot_split():
    from onnxpipe.serving.coalesce import ALONE, Coalescer, Job

    class Merging(Wrapping):  # a list answer that is not one result per item
        def __call__(self, inputs, **options):
            self.calls.append((inputs, options))
            return {"total": sum(map(len, inputs))} if isinstance(inputs, list) else {"total": len(inputs)}

    pipe = Merging()
    coalescer = Coalescer(pipe, max_batch_size=8)
    for _ in range(3):
        assert [o.value for o in coalescer.run([Job("ab", {}), Job("c", {})])] == [{"total": 2}, {"total": 1}]
    assert coalescer.rule(Job("x", {}).kind) == ALONE
    pipe.calls.clear()
    coalescer.run([Job("ab", {}), Job("c", {})])
    assert [c[0] for c in pipe.calls] == ["ab", "c"]


def test_coalescer_hands_each_error_to_its_own_request():
    from onnxpipe.errors import InvalidInputError
    from onnxpipe.serving.coalesce import Coalescer, Job

    class Picky(Wrapping):
        def __call__(self, inputs, **options):
            if "bad" in (inputs if isinstance(inputs, list) else [inputs]):
                raise InvalidInputError("no 'bad' please")
            return super().__call__(inputs, **options)

    coalescer = Coalescer(Picky(), max_batch_size=8)
    coalescer.run([Job("warm", {})])
    outcomes = coalescer.run([Job("a", {}), Job("bad", {}), Job("c", {})])
    assert [o.value for o in outcomes] == [[{"n": 1}], None, [{"n": 1}]]
    assert str(outcomes[1].error) == "no 'bad' please"
