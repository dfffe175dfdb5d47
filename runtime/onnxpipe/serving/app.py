"""The Starlette app: puts the routes on their paths. Hugging Face Inference API routes (`POST /`,
`POST /models/{name}`), OpenAI-compatible `/v1/embeddings`, text-embeddings-inference's routes (`/embed`, `/rerank`,
`/predict`, `/similarity`, `/tokenize`, `/decode`), and `/health`, `/ready`, `/info`, `/metrics`.

Nothing is parsed here: request checks live in protocol.py, the handlers in routes.py, embeddings.py and
streaming.py, the running state in state.py. Models are loaded before the app exists and looked up by name: no
request can make the server load a path.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route

from onnxpipe.serving.config import ServeConfig
from onnxpipe.serving.embeddings import embeddings_route, models_route, openai_error
from onnxpipe.serving.protocol import RequestError
from onnxpipe.serving.routes import (
    ErrorBody,
    Handler,
    guarded,
    health_route,
    hf_api_route,
    inference_route,
    info_route,
    metrics_route,
    ready_route,
)
from onnxpipe.serving.state import ServerState
from onnxpipe.serving.tei import (
    decode_route,
    embed_route,
    embed_sparse_route,
    predict_route,
    rerank_route,
    similarity_route,
    tei_error,
    tokenize_route,
)


def create_app(pipes: dict[str, Any], config: ServeConfig) -> Starlette:
    """The ASGI app serving already-loaded `pipes` (name -> pipeline) with `config`'s limits. Its `state.server`
    is the ServerState (the server's drain logic reads it); leaving the app's lifespan stops the batchers."""
    state = ServerState(pipes, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await asyncio.get_running_loop().run_in_executor(None, state.close)

    def get(path: str, handler: Handler, public: bool = False) -> Route:
        return Route(path, guarded(state, path, handler, public=public), methods=["GET"])

    def post(path: str, handler: Handler, error_body: ErrorBody = RequestError.body) -> Route:
        return Route(path, guarded(state, path, handler, inference=True, error_body=error_body), methods=["POST"])

    routes = [
        get("/health", health_route(state), public=True),
        get("/ready", ready_route(state)),
        get("/info", info_route(state)),
        get("/metrics", metrics_route(state)),
        post("/", inference_route(state, config.default_model)),
        post("/models/{name}", inference_route(state, None)),
        post("/hf/models/{name}", hf_api_route(state)),
        post("/v1/embeddings", embeddings_route(state), error_body=openai_error),
        get("/v1/models", models_route(state)),
        # text-embeddings-inference's routes (tei.py), with TEI's error bodies
        post("/embed", embed_route(state), error_body=tei_error),
        post("/embed_sparse", embed_sparse_route(state), error_body=tei_error),
        post("/rerank", rerank_route(state), error_body=tei_error),
        post("/predict", predict_route(state), error_body=tei_error),
        post("/similarity", similarity_route(state), error_body=tei_error),
        post("/tokenize", tokenize_route(state), error_body=tei_error),
        post("/decode", decode_route(state), error_body=tei_error),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.server = state
    return app
