"""What the HTTP server holds while it runs: the loaded pipelines, one batcher per model, the metrics, the number
of requests in flight and the draining flag. The routes share one `ServerState`; none of this knows HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from onnxpipe.serving.batcher import Batcher, QueueFullError
from onnxpipe.serving.coalesce import Job
from onnxpipe.serving.config import ServeConfig
from onnxpipe.serving.metrics import ServerMetrics
from onnxpipe.serving.protocol import Deadline, RequestError, deadline_exceeded, find_model, pipeline_error


class ServerState:
    """The loaded pipelines, their batchers, the metrics and the draining flag."""

    def __init__(self, pipes: dict[str, Any], config: ServeConfig):
        self.config = config
        self.pipes = pipes
        self.in_flight = 0
        self.draining = False
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
        )

    def idle(self) -> bool:
        """No request in flight and every queue empty: a draining server may stop."""
        return self.in_flight == 0 and all(b.idle() for b in self.batchers.values())

    def close(self) -> None:
        """Answer what is queued, then stop the workers."""
        for batcher in self.batchers.values():
            batcher.close()

    def pipe(self, name: str) -> Any:
        """The pipeline served under `name`; RequestError 404 listing the names otherwise."""
        return find_model(self.pipes, name)

    async def infer(self, name: str, jobs: list[Job], deadline: Deadline) -> list[Any]:
        """Queue `jobs` on the model's batcher and wait for their answers until `deadline` (504 after it). A full
        queue is 503 with Retry-After, and drops the jobs of this request already queued."""
        batcher = self.batchers[name]
        futures = []
        try:
            for job in jobs:
                futures.append(batcher.submit(job))
        except QueueFullError as exc:
            for future in futures:
                future.cancel()
            raise RequestError(503, "queue_full", f"model {name!r}: {exc}.", {"Retry-After": str(exc.retry_after)}) from None
        try:
            outcomes = await asyncio.wait_for(asyncio.gather(*futures), deadline.remaining())
        except asyncio.TimeoutError:
            raise deadline_exceeded(name, deadline, batcher.depth()) from None
        for outcome in outcomes:
            if outcome.error is not None:
                raise pipeline_error(outcome.error, name)
        return [outcome.value for outcome in outcomes]
