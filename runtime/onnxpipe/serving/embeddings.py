"""OpenAI-compatible `POST /v1/embeddings` for feature-extraction models: one pooled, L2-normalized vector per
input text, each text batched with other requests' texts."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from onnxpipe.serving.coalesce import Job
from onnxpipe.serving.protocol import RequestError, parse_json

if TYPE_CHECKING:
    from onnxpipe.serving.app import ServerState

TASK = "feature-extraction"
FIELDS = ("input", "model", "encoding_format")
ENCODINGS = ("float", "base64")


def openai_error(exc: RequestError) -> dict[str, Any]:
    """An error body in OpenAI's shape."""
    return {"error": {"message": exc.message, "type": exc.kind, "param": None, "code": exc.status}}


def parse_request(payload: Any, state: "ServerState") -> tuple[str, list[str], str]:
    """(model name, texts, encoding format) of an embeddings request; RequestError naming what is wrong."""
    if not isinstance(payload, dict) or "input" not in payload:
        raise RequestError(422, "invalid_request", 'the body must be a JSON object {"input": str or [str], "model": name}.')
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        raise RequestError(
            422, "invalid_request",
            f"unsupported field(s) {unknown}: onnxpipe's /v1/embeddings takes {', '.join(FIELDS)} "
            "(vectors keep the model's full size; `dimensions` and `user` are not implemented).",
        )
    embedders = [name for name, pipe in state.pipes.items() if getattr(pipe, "task", None) == TASK]
    name = payload.get("model")
    if name is None:
        if len(embedders) != 1:
            raise RequestError(422, "invalid_request", f"pass \"model\": one of the feature-extraction models {embedders}.")
        name = embedders[0]
    if not isinstance(name, str):
        raise RequestError(422, "invalid_request", f"'model' must be a model name string, got {type(name).__name__}.")
    pipe = state.pipe(name)
    if getattr(pipe, "task", None) != TASK:
        raise RequestError(
            422, "invalid_request",
            f"model {name!r} is a {pipe.task} model; /v1/embeddings needs a feature-extraction model: {embedders or 'none served'}.",
        )
    texts = payload["input"]
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise RequestError(
            422, "invalid_request", "'input' must be a string or a non-empty list of strings (token-id inputs are not supported)."
        )
    encoding = payload.get("encoding_format") or "float"
    if encoding not in ENCODINGS:
        raise RequestError(422, "invalid_request", f"encoding_format must be 'float' or 'base64', got {encoding!r}.")
    return name, texts, encoding


def token_count(pipe: Any, texts: list[str]) -> int:
    """Tokens the model reads for `texts` (after truncation), for `usage`."""
    return sum(len(piece) for piece in pipe.encoder.tokenize(texts, None, True, None))


def encode(vector: list[float], encoding: str) -> Any:
    """The vector as a list of floats, or as base64 of little-endian float32 (OpenAI's base64 format)."""
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


def embeddings_route(state: "ServerState") -> Callable[[Request], Any]:
    """The `/v1/embeddings` handler."""
    from onnxpipe.serving.app import deadline_of, read_body

    params = {"pooling": state.config.embedding_pooling, "normalize": True}

    async def handler(request: Request) -> Response:
        deadline, timeout = deadline_of(request, state.config)
        payload = parse_json(await read_body(request, state.config.max_body_bytes))
        name, texts, encoding = parse_request(payload, state)
        request.state.model = name
        vectors = await state.infer(name, [Job(text, dict(params)) for text in texts], deadline, timeout)
        tokens = token_count(state.pipes[name], texts)
        return JSONResponse({
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": encode(v, encoding)} for i, v in enumerate(vectors)],
            "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })

    return handler
