"""Issue 15, defect 8: one slow job inflated `Retry-After` to 90 s. The batcher's time-per-job estimate is now the
median of the recent calls, and Retry-After is capped, so one outlier among fast jobs leaves it small while a model
that really got slow still says so."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from onnxpipe.serving.batcher import RETRY_AFTER_CAP_S, Batcher
from onnxpipe.serving.coalesce import Job


class Echo:
    """A pipeline that takes `delay` seconds per call and answers its inputs."""

    task = "text-classification"

    def __init__(self, delay: float = 0.0):
        self.delay = delay

    def __call__(self, inputs, **options):
        time.sleep(self.delay)
        return inputs


def full_queue(batcher: Batcher, depth: int = 256) -> Batcher:
    """Stop the worker, then fill the queue with `depth` placeholders: retry_after reads only its length."""
    assert batcher.close(5.0)
    batcher.queue = deque([None] * depth)
    return batcher


def test_one_60_s_outlier_among_fast_jobs_keeps_retry_after_small():
    batcher = Batcher("m", Echo(), max_batch_size=32, max_queue=256)
    for _ in range(20):
        batcher.record_call(0.32, 32)  # 10 ms per job
    batcher.record_call(60.0, 1)  # one slow job: was an estimate of 12 s per job, Retry-After 96 s at depth 256
    for _ in range(5):
        batcher.record_call(0.32, 32)
    full_queue(batcher)
    assert batcher.job_seconds() == 0.01
    assert batcher.retry_after() == 3  # 256 jobs x 10 ms, rounded up


def test_a_model_that_got_slow_still_says_so_and_the_answer_is_capped():
    batcher = full_queue(Batcher("m", Echo(), max_batch_size=32, max_queue=8), depth=8)
    assert batcher.retry_after() == 1  # no call yet: 8 x 0.05 s per job
    for _ in range(40):  # every recent call slow: 2 s per job -> 8 x 2 = 16 s
        batcher.record_call(2.0, 1)
    assert batcher.retry_after() == 16
    batcher.record_call(0.01, 1)  # one fast call does not hide it either
    assert batcher.retry_after() == 16
    for _ in range(40):  # 10 s per job -> 80 s, capped
        batcher.record_call(10.0, 1)
    assert batcher.retry_after() == RETRY_AFTER_CAP_S == 30


def test_the_worker_records_the_time_per_job_of_its_calls():
    batcher = Batcher("m", Echo(delay=0.05), max_batch_size=4)

    async def run():
        futures = batcher.submit_many([Job(["a", "b"], {}), Job(["c"], {})])  # list inputs: one call each
        return [(await f).value for f in futures]

    try:
        assert asyncio.run(run()) == [["a", "b"], ["c"]]
    finally:
        assert batcher.close(5.0)
    assert len(batcher.job_times) == 2 and all(0.04 <= t < 1.0 for t in batcher.job_times), batcher.job_times
