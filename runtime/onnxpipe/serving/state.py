"""What the HTTP server holds while it runs: the loaded pipelines, one batcher per model, the metrics, the number
of requests in flight and the draining flag. The routes share one `ServerState`; none of this knows HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Awaitable, Callable, Iterator, Optional

from onnxpipe.cancellation import CancelToken
from onnxpipe.errors import CancelledError
from onnxpipe.serving.batcher import Batcher, QueueFullError
from onnxpipe.serving.coalesce import Job
from onnxpipe.serving.config import ServeConfig
from onnxpipe.serving.metrics import ServerMetrics
from onnxpipe.serving.protocol import Deadline, RequestError, deadline_exceeded, find_model, pipeline_error

DISCONNECT_POLL_S = 0.25  # how often a waiting request checks that its client is still there


class ServerState:
    """The loaded pipelines, their batchers, the metrics and the draining flag."""

    def __init__(self, pipes: dict[str, Any], config: ServeConfig):
        self.config = config
        self.pipes = pipes
        self.in_flight = 0
        self.draining = False
        self.tokens: set[CancelToken] = set()  # the CancelTokens of the requests being answered
        self.metrics = ServerMetrics(
            lambda: {(name, ): float(b.depth()) for name, b in self.batchers.items()}, lambda: float(self.in_flight)
        )
        self.batchers = {name: self._batcher(name, pipe) for name, pipe in pipes.items()}

    def _batcher(self, name: str, pipe: Any) -> Batcher:
        m = self.metrics
        return Batcher(
            name, pipe, self.config.max_batch_size, self.config.max_wait_ms, self.config.max_queue,
            on_call=lambda n, seconds: (m.batch_size.observe(n, name), m.run_time.observe(seconds, name)),
            on_probe=lambda rule: m.probes.inc(name, rule),
            on_wait=lambda seconds: m.queue_wait.observe(seconds, name),
            max_batch_tokens=self.config.max_batch_tokens,
        )

    def idle(self) -> bool:
        """No request in flight and every queue empty: a draining server may stop."""
        return self.in_flight == 0 and all(b.idle() for b in self.batchers.values())

    def close(self, timeout: Optional[float] = 5.0) -> None:
        """Answer what is queued, then stop the workers: at most `timeout` s each, then their work is cancelled."""
        for batcher in self.batchers.values():
            batcher.close(timeout)

    def cancel_all(self, reason: str = "the server is shutting down") -> None:
        """Cancel every request's work, queued, running or streaming (a drain past its timeout, a second signal)."""
        for token in list(self.tokens):
            token.cancel(reason)
        for batcher in self.batchers.values():
            batcher.cancel_all(reason)

    @contextlib.contextmanager
    def tracked(self, tokens: list[CancelToken]) -> Iterator[None]:
        """Keep a request's tokens where `cancel_all` finds them while it runs."""
        self.tokens.update(tokens)
        try:
            yield
        finally:
            self.tokens.difference_update(tokens)

    def pipe(self, name: str) -> Any:
        """The pipeline served under `name`; RequestError 404 listing the names otherwise."""
        return find_model(self.pipes, name)

    async def infer(self, name: str, jobs: list[Job], deadline: Deadline,
                    disconnected: Optional[Callable[[], Awaitable[bool]]] = None) -> list[Any]:
        """Queue `jobs` on the model's batcher (one admission for all of them) and wait for their answers until
        `deadline` (504 after it). A full queue is 503 with Retry-After. At the deadline, or when `disconnected()`
        (polled every DISCONNECT_POLL_S) says the client left, the jobs' CancelTokens are cancelled: queued jobs
        never run and a running call stops at its next check (onnxpipe.cancellation), freeing the model."""
        batcher = self.batchers[name]
        try:
            futures = batcher.submit_many(jobs)  # one request, one admission, however many jobs
        except QueueFullError as exc:
            raise RequestError(503, "queue_full", f"model {name!r}: {exc}.", {"Retry-After": str(exc.retry_after)}) from None
        tokens = [job.cancel for job in jobs]
        waiting = futures[0] if len(futures) == 1 else asyncio.ensure_future(asyncio.gather(*futures))

        def give_up(reason: str) -> None:
            for token in tokens:  # stop the work too, not only the wait: the model is free for the next request
                token.cancel(reason)
            waiting.cancel()

        with self.tracked(tokens):
            try:
                while not waiting.done():
                    remaining = deadline.remaining()
                    if remaining <= 0:
                        give_up(f"the request's deadline of {deadline.timeout:g} s passed")
                        raise deadline_exceeded(name, deadline, batcher.depth())
                    await asyncio.wait({waiting}, timeout=remaining if disconnected is None else min(remaining, DISCONNECT_POLL_S))
                    if not waiting.done() and disconnected is not None and await disconnected():
                        give_up("the client disconnected")
                        raise RequestError(499, "client_disconnected", "the client closed the connection.")
            except asyncio.CancelledError:  # the handler was cancelled (server stopping)
                give_up("the request was abandoned")
                raise
            outcomes = [waiting.result()] if len(futures) == 1 else waiting.result()
        for outcome in outcomes:
            if isinstance(outcome.error, CancelledError):
                raise RequestError(503, "cancelled", f"model {name!r}: {outcome.error}; retry.", {"Retry-After": "1"})
            if outcome.error is not None:
                raise pipeline_error(outcome.error, name)
        return [outcome.value for outcome in outcomes]
