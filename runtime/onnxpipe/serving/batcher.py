"""The dynamic batching queue: one worker thread per model takes queued jobs, waits up to `max_wait_ms` for
more with the same parameters, and answers them with as few pipeline calls as `Coalescer` allows.

The worker waits for company only when requests have been overlapping (its last batch answered several, or some
arrived while it ran): a lone client never pays the wait, a busy model gets full batches."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import deque
from typing import Any, Callable, Optional, Sequence

from onnxpipe.errors import CancelledError
from onnxpipe.serving.coalesce import Coalescer, Job, Outcome

RECENT_CALLS = 32  # pipeline calls whose time per job the Retry-After estimate reads
RETRY_AFTER_CAP_S = 30  # the longest Retry-After sent (the default --timeout): past it the guess is worth little


class QueueFullError(Exception):
    """The model's queue holds `max_queue` jobs already; `retry_after` is a guess in whole seconds."""

    def __init__(self, depth: int, retry_after: int):
        super().__init__(f"the queue is full ({depth} requests waiting); retry in {retry_after} s")
        self.retry_after = retry_after


class _Pending:
    """A queued job, the future its request awaits, and that request's event loop (the worker is another thread)."""

    __slots__ = ("job", "future", "loop")

    def __init__(self, job: Job, future: asyncio.Future[Outcome], loop: asyncio.AbstractEventLoop):
        self.job, self.future, self.loop = job, future, loop

    def deliver(self, outcome: Outcome) -> None:
        """Settle the future with `outcome` from the worker thread, unless the request stopped waiting (a 504)."""
        def settle() -> None:
            if not self.future.done():
                self.future.set_result(outcome)

        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the event loop is closed: nobody waits any more
            pass


class Batcher:
    """A bounded queue and one worker thread for one pipeline."""

    def __init__(
        self,
        name: str,
        pipe: Any,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        on_call: Optional[Callable[[int, float], None]] = None,
        on_probe: Optional[Callable[[str], None]] = None,
        on_wait: Optional[Callable[[float], None]] = None,
        max_batch_tokens: Optional[int] = None,
    ):
        self.name = name
        self.pipe = pipe
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_wait = on_wait or (lambda seconds: None)
        self.coalescer = Coalescer(pipe, max_batch_size, on_call=on_call, on_probe=on_probe, max_batch_tokens=max_batch_tokens)
        self.queue: deque[_Pending] = deque()
        self.cond = threading.Condition()
        self.busy = False
        self.closed = False
        self.last_batch = 1  # requests in the last batch
        self.arrived_while_busy = 0  # requests queued while the last batch ran
        self.job_times: deque[float] = deque(maxlen=RECENT_CALLS)  # time per job of the recent calls, for Retry-After
        self.running: list[_Pending] = []  # the jobs of the call in progress (cancel_all reaches them)
        self.thread = threading.Thread(target=self._loop, name=f"onnxpipe-batcher-{name}", daemon=True)
        self.thread.start()

    # -- the asyncio side ----------------------------------------------------------------------
    def submit(self, job: Job) -> asyncio.Future[Outcome]:
        """Queue `job`; the returned future gets its Outcome. Raises QueueFullError when the queue is full.
        Cancelling the future (a deadline) drops the job if its call has not started; cancelling `job.cancel`
        also stops its call once started (onnxpipe.cancellation)."""
        return self.submit_many([job])[0]

    def submit_many(self, jobs: Sequence[Job]) -> list[asyncio.Future[Outcome]]:
        """Queue all of one request's `jobs` as ONE admission: QueueFullError only when `max_queue` jobs are
        waiting already, however many this request brings (an embeddings request of 1,000 texts on an idle
        server is admitted; its texts are still batched with other requests' texts)."""
        loop = asyncio.get_running_loop()
        with self.cond:
            if self.closed:
                raise RuntimeError(f"the worker of model {self.name!r} has stopped")
            if len(self.queue) >= self.max_queue:
                raise QueueFullError(len(self.queue), self.retry_after())
            pending = [_Pending(job, loop.create_future(), loop) for job in jobs]
            self.queue.extend(pending)
            if self.busy:
                self.arrived_while_busy += len(pending)
            self.cond.notify()
        return [p.future for p in pending]

    def depth(self) -> int:
        """Jobs waiting (not counting the ones being run)."""
        return len(self.queue)

    def idle(self) -> bool:
        """No job waiting and none running."""
        with self.cond:
            return not self.queue and not self.busy

    def job_seconds(self) -> float:
        """The typical time per job: the median over the last RECENT_CALLS pipeline calls (0.05 s before any), so
        that one slow call among fast ones (a long generation, a cold start) does not move it. Call with the lock
        held."""
        return statistics.median(self.job_times) if self.job_times else 0.05

    def record_call(self, seconds: float, jobs: int) -> None:
        """Note a pipeline call that answered `jobs` jobs in `seconds` (under the lock: retry_after reads them)."""
        with self.cond:
            self.job_times.append(seconds / max(1, jobs))

    def retry_after(self) -> int:
        """Seconds after which the queue has likely drained: depth x time per job (a call's time over the jobs it
        answered, so batching is already counted), between 1 and RETRY_AFTER_CAP_S."""
        estimate = len(self.queue) * self.job_seconds()
        return min(RETRY_AFTER_CAP_S, max(1, int(estimate + 0.999)))

    def cancel_all(self, reason: str = "the server is shutting down") -> None:
        """Cancel every job queued or running: the running call stops at its next check (a generation step, a
        model run), the queued ones are answered with CancelledError without running."""
        with self.cond:
            for pending in [*self.running, *self.queue]:
                pending.job.cancel.cancel(reason)
            self.cond.notify_all()

    def close(self, timeout: Optional[float] = None) -> bool:
        """Answer the jobs still queued, then stop the worker, waiting at most `timeout` seconds (None: no
        limit); past it, cancel what is left and wait at most 2 s more. True when the worker has stopped."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.cancel_all()
            self.thread.join(2.0)
        return not self.thread.is_alive()

    # -- the worker ----------------------------------------------------------------------------
    def _take(self) -> list[_Pending]:
        """The next batch: the oldest job plus queued single-item jobs with its parameters, waiting until the
        oldest has waited `max_wait` or the batch is full. Called with the lock held."""
        while not self.queue:
            if self.closed:
                return []
            self.cond.wait()
        first = self.queue.popleft()
        batch = [first]
        if not first.job.single or self.max_batch_size == 1:
            return batch
        company_expected = bool(self.queue) or self.last_batch > 1 or self.arrived_while_busy > 0
        deadline = first.job.enqueued + self.max_wait
        while True:
            kept: deque[_Pending] = deque()
            while self.queue and len(batch) < self.max_batch_size:
                item = self.queue.popleft()
                if item.job.single and item.job.key == first.job.key and not item.future.cancelled():
                    batch.append(item)
                else:
                    kept.append(item)
            self.queue.extendleft(reversed(kept))
            remaining = deadline - time.monotonic()
            if len(batch) >= self.max_batch_size or remaining <= 0 or self.closed or not company_expected:
                return batch
            self.cond.wait(remaining)

    def _loop(self) -> None:
        while True:
            with self.cond:
                batch = self._take()
                if not batch:
                    return
                self.busy = True
                self.last_batch = len(batch)
                self.arrived_while_busy = 0
            try:
                live = [p for p in batch if not p.future.cancelled() and not p.job.cancel.cancelled]
                for pending in batch:  # past their deadline (already answered 504) or cancelled by a shutdown
                    if pending.job.cancel.cancelled:
                        pending.deliver(Outcome(error=CancelledError(pending.job.cancel.reason)))
                with self.cond:
                    self.running = live
                if live:
                    now = time.monotonic()
                    for p in live:
                        self.on_wait(now - p.job.enqueued)
                    started = time.perf_counter()
                    outcomes = self.coalescer.run([p.job for p in live])
                    self.record_call(time.perf_counter() - started, len(live))
                    for pending, outcome in zip(live, outcomes):
                        pending.deliver(outcome)
            except BaseException as exc:  # noqa: BLE001 - the worker must outlive any request
                for pending in batch:
                    pending.deliver(Outcome(error=exc if isinstance(exc, Exception) else RuntimeError(repr(exc))))
            finally:
                with self.cond:
                    self.busy = False
                    self.running = []
