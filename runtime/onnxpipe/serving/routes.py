"""The route handlers of the HTTP server (but `/v1/embeddings`, in embeddings.py), and `guarded`, the envelope
every route runs in: auth, draining, in-flight counting, error answers and metrics.

Handlers only read a request through protocol.py (auth, body limit, deadline, body shape) and answer with what
the pipeline returns; app.py puts them on their paths.
"""

from __future__ import annotations

import contextlib
import platform
import time
from importlib import metadata
from typing import Any, Awaitable, Callable, Optional

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from onnxpipe import __version__
from onnxpipe.serving.coalesce import Job
from onnxpipe.serving.negotiation import check_acceptable, respond
from onnxpipe.serving.protocol import (
    EMBEDDINGS_TASK,
    RequestError,
    check_authorized,
    check_parameters,
    deadline_of,
    parse_request,
    read_body,
)
from onnxpipe.serving.state import ServerState
from onnxpipe.serving.streaming import stream_response
from onnxpipe.serving.tei import tei_info

Handler = Callable[[Request], Awaitable[Response]]
ErrorBody = Callable[[RequestError], dict]


def guarded(state: ServerState, route: str, handler: Handler, inference: bool = False, public: bool = False,
            error_body: ErrorBody = RequestError.body) -> Handler:
    """Wrap a handler with auth (unless `public`), draining and in-flight counting (for `inference` routes), the
    answer to a RequestError in `error_body`'s shape, and the request metrics."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        try:
            if not public:
                check_authorized(request.headers, state.config.api_key)
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


def inference_route(state: ServerState, fixed_name: Optional[str]) -> Handler:
    """`POST /models/{name}` (or `POST /` for the default model): one pipeline call, answered as JSON or, for one
    image or audio answer, as its file's bytes (negotiation.respond, by the Accept header), or as Server-Sent Events
    when the body says `"stream": true` (generation tasks)."""

    async def handler(request: Request) -> Response:
        name = fixed_name or request.path_params["name"]
        pipe = state.pipe(name)
        request.state.model = name
        deadline = deadline_of(request.headers, state.config.timeout_s)
        body = await read_body(request, state.config.max_body_bytes)
        inputs, params, stream = parse_request(body, request.headers.get("content-type"))
        check_parameters(pipe, inputs, params)
        if stream:
            return await stream_response(state, name, pipe, inputs, params, deadline)
        accept = request.headers.get("accept")
        check_acceptable(accept)
        [answer] = await state.infer(name, [Job(inputs, params)], deadline, request.is_disconnected)
        return respond(answer, accept, name)

    return handler


def hf_api_route(state: ServerState) -> Handler:
    """`POST /hf/models/{name}`: the same call as `/models/{name}`, answered in the shapes the Hugging Face Inference
    API documents and `huggingface_hub.InferenceClient` parses (hf_api_answer); not streamed."""

    async def handler(request: Request) -> Response:
        name = request.path_params["name"]
        pipe = state.pipe(name)
        request.state.model = name
        deadline = deadline_of(request.headers, state.config.timeout_s)
        body = await read_body(request, state.config.max_body_bytes)
        inputs, params, stream = parse_request(body, request.headers.get("content-type"))
        if stream:
            raise RequestError(422, "invalid_request", '"stream": true is served on /models/{name}, not on /hf/models/{name}.')
        task = getattr(pipe, "task", None)
        if task == EMBEDDINGS_TASK:
            if "truncate" in params:  # the Inference API's (TEI's) name
                params = {**{k: v for k, v in params.items() if k != "truncate"}, "truncation": params["truncate"]}
            params = {"pooling": state.config.embedding_pooling, "normalize": True, **params}
        check_parameters(pipe, inputs, params)
        accept = request.headers.get("accept")
        check_acceptable(accept)
        [answer] = await state.infer(name, [Job(inputs, params)], deadline, request.is_disconnected)
        return respond(hf_api_answer(task, inputs, answer, pooled=params.get("pooling") != "none"), accept, name)

    return handler


def hf_api_answer(task: Optional[str], inputs: Any, answer: Any, pooled: bool = True) -> Any:
    """A pipeline's answer in the Inference API's shape where it differs from transformers': text-classification
    gives one list of {label, score} per input, always (transformers gives a flat list for one text with top_k);
    feature-extraction gives one row per input (a lone text's pooled vector inside a list; `pooling: "none"` keeps
    transformers' token rows). Other tasks as they are."""
    single = not isinstance(inputs, list)
    if task == "text-classification":
        rows = [answer] if single else list(answer)
        return [row if isinstance(row, list) else [row] for row in rows]
    if task == EMBEDDINGS_TASK and single and pooled:
        return [answer]
    return answer


# -- operations: health, readiness, what is served, metrics ---------------------------------------
def health_route(state: ServerState) -> Handler:
    """`GET /health`: the process answers (public, also while draining)."""

    async def handler(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return handler


def ready_route(state: ServerState) -> Handler:
    """`GET /ready`: 200 with the model names, 503 once draining (so a load balancer stops sending)."""

    async def handler(request: Request) -> Response:
        if state.draining:
            return JSONResponse({"status": "shutting down"}, 503)
        return JSONResponse({"status": "ready", "models": list(state.pipes)})

    return handler


def info_route(state: ServerState) -> Handler:
    """`GET /info`: the served models, the package versions and the server's settings (never the api key)."""
    config = state.config
    sources = {spec.name: spec.source for spec in config.models}

    async def handler(request: Request) -> Response:
        return JSONResponse({
            "default_model": config.default_model,
            "models": {name: describe(name, pipe, sources.get(name, "")) for name, pipe in state.pipes.items()},
            "versions": versions(),
            "server": {
                "max_batch_size": config.max_batch_size, "max_wait_ms": config.max_wait_ms, "max_queue": config.max_queue,
                "timeout_s": config.timeout_s, "max_body_bytes": config.max_body_bytes, "api_key": config.api_key is not None,
                "embedding_pooling": config.embedding_pooling, "max_client_batch_size": config.max_client_batch_size,
                "max_batch_tokens": config.max_batch_tokens,
                "allow_media_files": config.allow_media_files, "allow_media_urls": config.allow_media_urls,
            },
            "limits": config.limits.as_dict(),
            **tei_info(state),  # text-embeddings-inference's keys, for its clients
        })

    return handler


def metrics_route(state: ServerState) -> Handler:
    """`GET /metrics`: the Prometheus text format."""

    async def handler(request: Request) -> Response:
        return PlainTextResponse(state.metrics.render(), media_type="text/plain; version=0.0.4")

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
