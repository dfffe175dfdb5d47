"""onnxpipe.cancellation: a CancelToken cancelled from another thread stops greedy search, sampling and beam
search at the next step (a numpy decoder counts the steps), and an encoder pipeline between model runs."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from onnxpipe.cancellation import AllCancelled, CancelToken, cancel_scope, current_token, raise_if_cancelled
from onnxpipe.errors import CancelledError, OnnxpipeError
from onnxpipe.generation import generate, resolve_generation_config

VOCAB = 50


class CountingDecoder:
    """A decoder-only model in numpy: logits favour token (last + 1) % VOCAB; it counts its steps and cancels
    `token` at step `cancel_at` (a client giving up while the loop runs)."""

    is_encoder_decoder = False

    def __init__(self, token: CancelToken | None = None, cancel_at: int = -1):
        self.steps = 0
        self.token, self.cancel_at = token, cancel_at

    def prepare(self, input_ids, attention_mask):
        return None

    def step(self, state, tokens, attention_mask):
        self.steps += 1
        if self.token is not None and self.steps == self.cancel_at:
            self.token.cancel("the test gave up")
        logits = np.random.default_rng(self.steps).normal(size=(tokens.shape[0], VOCAB)).astype(np.float32)
        logits[np.arange(tokens.shape[0]), (tokens[:, -1] + 1) % VOCAB] += 5.0
        return logits, None

    def select(self, state, rows):
        return None


def run(decoder, **options):
    config = resolve_generation_config({}, {"vocab_size": VOCAB}, {}, {"max_new_tokens": 200, **options})
    return generate(decoder, np.array([[1, 2, 3]], dtype=np.int64), None, config)


@pytest.mark.parametrize("options", [{}, {"do_sample": True, "seed": 0}, {"num_beams": 4}, {"num_beams": 3, "do_sample": True, "seed": 1}],
                         ids=["greedy", "sampling", "beam", "beam-sampling"])
def test_a_token_cancelled_mid_way_stops_the_loop_at_that_step(options):
    token = CancelToken()
    decoder = CountingDecoder(token, cancel_at=5)
    with cancel_scope(token), pytest.raises(CancelledError, match="the test gave up"):
        run(decoder, **options)
    assert decoder.steps == 5  # checked right after the step that saw the cancellation, not 200 steps later


def test_without_a_scope_or_with_a_live_token_generation_runs_to_the_end():
    assert run(CountingDecoder()).shape == (1, 203)
    token = CancelToken()
    with cancel_scope(token):
        assert run(CountingDecoder()).shape == (1, 203)
    assert current_token() is None  # the scope is gone after the block


def test_a_token_cancelled_before_the_call_stops_it_before_any_step():
    token = CancelToken()
    token.cancel()
    decoder = CountingDecoder()
    with cancel_scope(token), pytest.raises(CancelledError):
        run(decoder, num_beams=2)
    assert decoder.steps == 0


def test_the_token_and_its_error():
    token = CancelToken()
    assert not token.cancelled
    token.raise_if_cancelled()
    token.cancel("first")
    token.cancel("second")
    assert token.cancelled and token.reason == "first"
    with pytest.raises(CancelledError, match="first") as caught:
        token.raise_if_cancelled()
    assert isinstance(caught.value, OnnxpipeError) and isinstance(caught.value, RuntimeError)
    raise_if_cancelled()  # no scope: nothing to check
    a, b = CancelToken(), CancelToken()
    both = AllCancelled([a, b])
    a.cancel()
    assert not both.cancelled
    b.cancel()
    assert both.cancelled


def test_cancel_from_another_thread_stops_a_long_beam_search():
    token = CancelToken()

    class Slow(CountingDecoder):
        def step(self, state, tokens, attention_mask):
            time.sleep(0.01)
            return super().step(state, tokens, attention_mask)

    threading.Timer(0.2, token.cancel).start()
    started = time.monotonic()
    with cancel_scope(token), pytest.raises(CancelledError):
        run(Slow(), num_beams=4, max_new_tokens=10_000)
    assert time.monotonic() - started < 1.0


def test_an_encoder_pipeline_stops_between_runs(models):
    from onnxpipe import pipeline

    pipe = pipeline("text-classification", model=str(models.get("bert", "text-classification").onnx), dtype="fp32")
    token = CancelToken()
    runs = []
    original = pipe.session.run

    def counting_run(feeds):
        runs.append(1)
        if len(runs) == 2:
            token.cancel()
        return original(feeds)

    pipe.session.run = counting_run
    with cancel_scope(token), pytest.raises(CancelledError):
        pipe(["some text"] * 10, batch_size=2)
    assert len(runs) == 2  # 5 runs were due; the call stopped after the one that saw the cancellation
    assert len(pipe(["some text"] * 3, batch_size=2)) == 3  # outside the scope: not cancellable, runs fine


def test_stream_runs_its_generation_thread_under_the_callers_scope(generation_models):
    from onnxpipe import pipeline

    pipe = pipeline("text-generation", model=str(generation_models.get("gpt2").onnx), dtype="fp32")
    token = CancelToken()
    token.cancel()
    with cancel_scope(token), pytest.raises(CancelledError):
        list(pipe.stream("Hello there", max_new_tokens=50, do_sample=False))
