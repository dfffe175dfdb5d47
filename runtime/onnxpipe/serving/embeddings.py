"""OpenAI-compatible `POST /v1/embeddings` for feature-extraction models: one pooled, L2-normalized vector per
input text, each text batched with other requests' texts. The body is parsed in protocol.py; this module makes
the answer in OpenAI's shape (vectors as floats or base64, token usage, OpenAI-style errors). Also `GET /v1/models`,
the served models in OpenAI's list shape (`client.models.list()`)."""

from __future__ import annotations

import base64
import time
from typing import Any, Awaitable, Callable

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from onnxpipe.serving.coalesce import Job
from onnxpipe.serving.protocol import RequestError, check_input_count, deadline_of, parse_embeddings, read_body
from onnxpipe.serving.state import ServerState
from onnxpipe.text.sentence_transformers_config import l2_normalize


def openai_error(exc: RequestError) -> dict[str, Any]:
    """An error body in OpenAI's shape, which the official clients parse."""
    return {"error": {"message": exc.message, "type": exc.kind, "param": None, "code": exc.status}}


def token_count(pipe: Any, texts: list[str]) -> int:
    """Tokens the model reads for `texts` (after truncation), for `usage`."""
    return sum(len(piece) for piece in pipe.encoder.tokenize(texts, None, True, None))


def encode(vector: list[float], encoding: str) -> Any:
    """The vector as a list of floats, or as base64 of little-endian float32 (OpenAI's base64 format)."""
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


def shortened(vectors: list[list[float]], dimensions: int) -> list[list[float]]:
    """Matryoshka shortening, as OpenAI's `dimensions` and TEI's do it: the first `dimensions` values of each vector,
    L2-normalized again. 422 past the model's size. Any model is cut; one not trained Matryoshka-style loses more."""
    array = np.asarray(vectors, dtype=np.float32)
    if dimensions > array.shape[-1]:
        raise RequestError(422, "invalid_request", f"dimensions={dimensions} is above the model's {array.shape[-1]}.")
    return l2_normalize(array[:, :dimensions]).tolist()


def embeddings_route(state: ServerState) -> Callable[[Request], Awaitable[Response]]:
    """The `/v1/embeddings` handler: each text is one job on the model's batcher, pooled as --embedding-pooling says."""
    params = {"pooling": state.config.embedding_pooling, "normalize": True}

    async def handler(request: Request) -> Response:
        deadline = deadline_of(request.headers, state.config.timeout_s)
        body = await read_body(request, state.config.max_body_bytes)
        name, texts, encoding, dimensions = parse_embeddings(body, state.pipes)
        check_input_count(len(texts), state.config.limits)
        request.state.model = name
        vectors = await state.infer(name, [Job(text, dict(params)) for text in texts], deadline, request.is_disconnected)
        if dimensions is not None:
            vectors = shortened(vectors, dimensions)
        tokens = token_count(state.pipes[name], texts)
        return JSONResponse({
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": encode(v, encoding)} for i, v in enumerate(vectors)],
            "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })

    return handler


def models_route(state: ServerState) -> Callable[[Request], Awaitable[Response]]:
    """`GET /v1/models`: every served model as an OpenAI model object (id = the served name; `task` added)."""
    created = int(time.time())

    async def handler(request: Request) -> Response:
        return JSONResponse({
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "onnxpipe", "task": getattr(pipe, "task", None)}
                for name, pipe in state.pipes.items()
            ],
        })

    return handler
