"""The Starlette app: Hugging Face Inference API routes, OpenAI-compatible embeddings, health, info and metrics.

Models are loaded before the app exists and looked up by name: no request can make the server load a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import platform
import time
from importlib import metadata
from typing import Any, Awaitable, Callable, Optional

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from onnxpipe import __version__
from onnxpipe.serving.batcher import Batcher, QueueFullError
from onnxpipe.serving.coalesce import Job, reserved_parameters
from onnxpipe.serving.config import ServeConfig
from onnxpipe.serving.metrics import ServerMetrics
from onnxpipe.serving.protocol import RequestError, parse_request, pipeline_error

TIMEOUT_HEADER = "x-request-timeout"
Handler = Callable[[Request], Awaitable[Response]]


class ServerState:
    """The loaded pipelines, their batchers, the metrics and the draining flag."""

    def __init__(self, pipes: dict[str, Any], config: ServeConfig):
        self.config = config
        self.pipes = pipes
        self.reserved = {name: reserved_parameters(pipe) for name, pipe in pipes.items()}
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
        if name not in self.pipes:
            raise RequestError(404, "not_found", f"no model named {name!r}; this server serves: {', '.join(self.pipes)}.")
        return self.pipes[name]

    async def infer(self, name: str, jobs: list[Job], deadline: float, timeout: float) -> list[Any]:
        """Queue `jobs` on the model's batcher and wait for their answers until `deadline` (504 after it)."""
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
            outcomes = await asyncio.wait_for(asyncio.gather(*futures), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise RequestError(
                504, "deadline_exceeded",
                f"model {name!r} did not answer within the deadline of {timeout:g} s ({batcher.depth()} requests queued); "
                "retry later, send fewer inputs, or allow more time (X-Request-Timeout header, --timeout).",
            ) from None
        for outcome in outcomes:
            if outcome.error is not None:
                raise pipeline_error(outcome.error, name)
        return [outcome.value for outcome in outcomes]


# -- request plumbing --------------------------------------------------------------------------
async def read_body(request: Request, limit: int) -> bytes:
    """The body, or RequestError 413 as soon as it passes `limit` bytes (declared or streamed)."""
    too_large = RequestError(
        413, "body_too_large", f"the request body is larger than {limit} bytes; send fewer or shorter inputs (or raise --max-body-bytes).",
        {"Connection": "close"},
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def deadline_of(request: Request, config: ServeConfig) -> tuple[float, float]:
    """(monotonic deadline, timeout s): --timeout, or less when the client sends X-Request-Timeout (seconds)."""
    timeout = config.timeout_s
    header = request.headers.get(TIMEOUT_HEADER)
    if header is not None:
        try:
            asked = float(header)
        except ValueError:
            asked = -1.0
        if not asked > 0:
            raise RequestError(400, "invalid_request", f"X-Request-Timeout must be a positive number of seconds, got {header!r}.")
        timeout = min(timeout, asked)
    return time.monotonic() + timeout, timeout


def authorized(request: Request, api_key: Optional[str]) -> bool:
    """True without an api key, else when the request carries `Authorization: Bearer <key>`."""
    if api_key is None:
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def guarded(state: ServerState, route: str, handler: Handler, inference: bool = False, public: bool = False,
            error_body: Callable[[RequestError], dict] = RequestError.body) -> Handler:
    """Wrap a handler with auth, draining, in-flight counting, error answers and metrics."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        try:
            if not public and not authorized(request, state.config.api_key):
                raise RequestError(401, "unauthorized", "missing or wrong API key: send 'Authorization: Bearer <key>'.",
                                   {"WWW-Authenticate": "Bearer"})
            if inference and state.draining:
                raise RequestError(503, "shutting_down", "the server is shutting down; retry on another instance.",
                                   {"Retry-After": "1", "Connection": "close"})
            if inference:
                state.in_flight += 1
                try:
                    response = await handler(request)
                finally:
                    state.in_flight -= 1
            else:
                response = await handler(request)
        except RequestError as exc:
            state.metrics.errors.inc(getattr(request.state, "model", ""), exc.kind)
            response = JSONResponse(error_body(exc), exc.status, headers=exc.headers)
        model = getattr(request.state, "model", "")
        state.metrics.requests.inc(model, route, str(response.status_code))
        if inference:
            state.metrics.latency.observe(time.perf_counter() - started, model, route)
        return response

    return endpoint


# -- routes ------------------------------------------------------------------------------------
def inference_route(state: ServerState, fixed_name: Optional[str]) -> Handler:
    """`POST /models/{name}` (or `POST /` for the default model): one pipeline call, answered as JSON, or as
    Server-Sent Events when the body says `"stream": true` (generation tasks)."""

    async def handler(request: Request) -> Response:
        name = fixed_name or request.path_params["name"]
        state.pipe(name)
        request.state.model = name
        deadline, timeout = deadline_of(request, state.config)
        body = await read_body(request, state.config.max_body_bytes)
        inputs, params, stream = parse_request(body, state.reserved[name])
        if stream:
            from onnxpipe.serving.streaming import stream_response

            return stream_response(state, name, state.pipe(name), inputs, params, deadline)
        [answer] = await state.infer(name, [Job(inputs, params)], deadline, timeout)
        return JSONResponse(answer)

    return handler


def versions() -> dict[str, str]:
    """Versions of Python and of the packages the server runs on."""
    found = {"python": platform.python_version(), "onnxpipe": __version__}
    for dist in ("onnxruntime", "onnxruntime-gpu", "tokenizers", "numpy", "starlette", "uvicorn"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[dist] = metadata.version(dist)
    return found


def describe(name: str, pipe: Any, source: str) -> dict[str, Any]:
    """What /info says about one served model: task, file, dtype, providers and its manifest."""
    folder = getattr(pipe, "folder", None)
    session = getattr(pipe, "session", None)
    return {
        "task": getattr(pipe, "task", None),
        "source": source,
        "file": getattr(getattr(pipe, "model_path", None), "name", None),
        "dtype": getattr(pipe, "dtype", None),
        "providers": list(getattr(session, "providers", []) or []),
        "manifest": getattr(folder, "manifest", None),
    }


def create_app(pipes: dict[str, Any], config: ServeConfig) -> Starlette:
    """The ASGI app serving already-loaded `pipes` (name -> pipeline) with `config`'s limits."""
    from onnxpipe.serving.embeddings import embeddings_route, openai_error

    state = ServerState(pipes, config)
    sources = {spec.name: spec.source for spec in config.models}

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        if state.draining:
            return JSONResponse({"status": "shutting down"}, 503)
        return JSONResponse({"status": "ready", "models": list(pipes)})

    async def info(request: Request) -> Response:
        return JSONResponse({
            "default_model": config.default_model,
            "models": {name: describe(name, pipe, sources.get(name, "")) for name, pipe in pipes.items()},
            "versions": versions(),
            "server": {
                "max_batch_size": config.max_batch_size, "max_wait_ms": config.max_wait_ms, "max_queue": config.max_queue,
                "timeout_s": config.timeout_s, "max_body_bytes": config.max_body_bytes, "api_key": config.api_key is not None,
                "embedding_pooling": config.embedding_pooling,
                "allow_media_files": config.allow_media_files, "allow_media_urls": config.allow_media_urls,
            },
        })

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(state.metrics.render(), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await asyncio.get_running_loop().run_in_executor(None, state.close)

    routes = [
        Route("/health", guarded(state, "/health", health, public=True), methods=["GET"]),
        Route("/ready", guarded(state, "/ready", ready), methods=["GET"]),
        Route("/info", guarded(state, "/info", info), methods=["GET"]),
        Route("/metrics", guarded(state, "/metrics", metrics), methods=["GET"]),
        Route("/", guarded(state, "/", inference_route(state, config.default_model), inference=True), methods=["POST"]),
        Route("/models/{name}", guarded(state, "/models/{name}", inference_route(state, None), inference=True), methods=["POST"]),
        Route("/v1/embeddings", guarded(state, "/v1/embeddings", embeddings_route(state), inference=True,
                                        error_body=openai_error), methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.server = state
    return app
