"""Load the models and run the app on uvicorn, with a graceful shutdown: on SIGTERM or Ctrl-C the server
answers new requests 503 (and /ready 503) while in-flight ones finish, then stops. A second signal stops at once."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import uvicorn

from onnxpipe.pipelines import pipeline
from onnxpipe.serving.app import create_app
from onnxpipe.serving.config import ServeConfig

log = logging.getLogger("onnxpipe.serve")


def load_pipelines(config: ServeConfig) -> dict[str, Any]:
    """name -> pipeline for every `--model`, loaded now (errors name the folder and the fix)."""
    pipes = {}
    for spec in config.models:
        started = time.perf_counter()
        pipes[spec.name] = pipeline(
            config.task, model=spec.source, device=config.device, dtype=config.dtype, intra_op_num_threads=config.threads,
            media_sources=config.media_sources, limits=config.limits,
        )
        pipe = pipes[spec.name]
        log.info("model %r: %s from %s (%s) in %.2f s", spec.name, pipe.task, spec.source, pipe.model_path.name,
                 time.perf_counter() - started)
    return pipes


class DrainingServer(uvicorn.Server):
    """uvicorn's server, but the first SIGTERM/SIGINT only starts draining; it stops once idle or after the
    drain timeout, cancelling (onnxpipe.cancellation) whatever still runs then. A second signal cancels the work
    in flight and stops at once, without waiting for connections or the drain."""

    def __init__(self, config: uvicorn.Config, app_state: Any, drain_timeout_s: float):
        super().__init__(config)
        self.app_state = app_state
        self.drain_timeout_s = drain_timeout_s
        self.drain_deadline = 0.0
        self.forced = False

    def handle_exit(self, sig: int, frame: Any) -> None:
        """uvicorn's signal handler: the first signal starts draining, a second one stops at once."""
        if self.app_state.draining:
            log.warning("second signal: cancelling %d in-flight request(s) and stopping now", self.app_state.in_flight)
            self.forced = True
            self.app_state.cancel_all("the server was stopped")
            self.should_exit = self.force_exit = True  # uvicorn skips waiting for connections and the lifespan
            return
        self.app_state.draining = True
        self.drain_deadline = time.monotonic() + self.drain_timeout_s
        log.info("draining: new requests get 503; waiting for %d in flight (at most %g s)",
                 self.app_state.in_flight, self.drain_timeout_s)

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's periodic check (True stops the server): stop once drained or past the drain deadline, when
        the work still in flight is cancelled (its requests get 503)."""
        if self.app_state.draining and not self.app_state.idle() and time.monotonic() >= self.drain_deadline:
            log.warning("drain timeout of %g s passed: cancelling %d in-flight request(s)", self.drain_timeout_s,
                        self.app_state.in_flight)
            self.app_state.cancel_all(f"the server stopped after its drain timeout of {self.drain_timeout_s:g} s")
            return True
        if self.app_state.draining and self.app_state.idle():
            return True
        return await super().on_tick(counter)


def run(config: ServeConfig) -> int:
    """Serve until stopped; the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    app = create_app(load_pipelines(config), config)
    uv_config = uvicorn.Config(
        app, host=config.host, port=config.port, log_level="info", access_log=False, timeout_graceful_shutdown=5,
        lifespan="on",
    )
    server = DrainingServer(uv_config, app.state.server, config.drain_timeout_s)
    auth = "bearer token required" if config.api_key else "no api key"
    log.info("serving %s on http://%s:%d (default model %r, %s, max batch %d, max wait %g ms)",
             ", ".join(app.state.server.pipes), config.host, config.port, config.default_model, auth,
             config.max_batch_size, config.max_wait_ms)
    server.run()
    if server.forced:
        app.state.server.close(timeout=2.0)  # the lifespan was skipped: stop the (cancelled) workers briefly
    return 1 if server.forced else 0
