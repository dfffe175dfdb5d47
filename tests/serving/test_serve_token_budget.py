"""Token-budget batching (issue 17, section 4; TEI's --max-batch-tokens): with `--max-batch-tokens N`, a batched call
of text inputs holds at most N padded tokens (requests x the longest one's token count), counted by the model's own
tokenizer; inputs that are not texts keep count-based batching."""

from __future__ import annotations

import random

import pytest

from onnxpipe.serving.coalesce import Coalescer, Job, padding_runs, token_counts


def test_runs_keep_within_the_budget_and_long_inputs_run_alone():
    rng = random.Random(0)
    sizes = [rng.choice([3, 5, 8, 12, 40, 120, 500]) for _ in range(64)]
    jobs = [Job("x", {}) for _ in sizes]
    runs = padding_runs(jobs, list(range(64)), 32, sizes=sizes, max_tokens=256, call_cost=16)
    assert sorted(i for run in runs for i in run) == list(range(64))
    for run in runs:
        assert len(run) <= 32
        assert len(run) == 1 or len(run) * max(sizes[i] for i in run) <= 256, [sizes[i] for i in run]
    assert [sizes[run[0]] for run in runs if len(run) == 1 and sizes[run[0]] == 500]  # past the budget: alone
    short = [run for run in runs if max(sizes[i] for i in run) <= 8]
    assert max(len(run) for run in short) > 8  # short inputs share calls


def test_without_a_budget_only_the_count_limits_a_run():
    sizes = [10] * 40
    jobs = [Job("x", {}) for _ in sizes]
    assert sorted(len(run) for run in padding_runs(jobs, list(range(40)), 32, sizes=sizes)) == [8, 32]


class Tokenizer:
    """Counts one token per word."""

    class Encoding:
        def __init__(self, text):
            self.ids = text.split()

    def encode_batch(self, texts):
        return [self.Encoding(t) for t in texts]


class Encoder:
    tokenizer = Tokenizer()


class Recorder:
    """A text pipeline that records the inputs of each call."""

    task = "text-classification"
    encoder = Encoder()

    def __init__(self):
        self.calls = []

    def __call__(self, inputs, **options):
        self.calls.append(inputs)
        return [len(t) for t in inputs] if isinstance(inputs, list) else len(inputs)


def test_the_coalescer_splits_calls_by_the_models_tokens():
    pipe = Recorder()
    coalescer = Coalescer(pipe, max_batch_size=32, max_batch_tokens=40)
    texts = ["word " * n for n in [2, 2, 3, 20, 2, 3, 19, 2, 2, 3, 2, 2]]
    outcomes = coalescer.run([Job(t, {}) for t in texts])
    assert [o.value for o in outcomes] == [len(t) for t in texts]  # answers in request order
    batched = [call for call in pipe.calls if isinstance(call, list)]
    assert batched, pipe.calls
    for call in batched:
        assert len(call) * max(len(t.split()) for t in call) <= 40, [len(t.split()) for t in call]
    assert token_counts(pipe, texts) == [len(t.split()) for t in texts]
    assert token_counts(pipe, [{"text": "a"}]) is None  # not plain texts: count-based


def test_served_answers_are_unchanged_under_a_token_budget(models, tmp_path):
    pytest.importorskip("starlette")
    import httpx
    from support.live_server import ServerProcess, burst, metric

    from onnxpipe import pipeline

    folder = models.get("bert", "text-classification").onnx
    direct = pipeline("text-classification", model=str(folder), dtype="fp32")
    srv = ServerProcess({"cls": folder}, tmp_path / "server.log", "--max-batch-tokens", "64", "--max-wait-ms", "50")
    try:
        assert httpx.get(srv.url + "/info").json()["server"]["max_batch_tokens"] == 64
        texts = [("a few words " * n).strip() for n in [1, 2, 1, 12, 1, 3, 10, 1, 2, 1, 1, 2] * 2]
        answers = burst(srv.url + "/models/cls", [{"inputs": t} for t in texts], concurrency=12)
        for text, answer in zip(texts, answers):
            assert answer.status_code == 200, answer.text
            assert answer.json()[0]["label"] == direct(text)[0]["label"]
            assert answer.json()[0]["score"] == pytest.approx(direct(text)[0]["score"], abs=1e-4)
        calls = metric(srv.metrics(), "onnxpipe_batch_size_count", model="cls")
        assert 1 < calls < len(texts) + 3  # batched, and split where the budget says (probes add calls)
    finally:
        srv.stop()
