"""Everything a request must pass before a pipeline runs, in one place: auth, the body-size limit, the deadline,
the body's shape, and the error answers. Shared by the HTTP app's routes and the Ray Serve deployment.

The inference body is the Hugging Face Inference API's: `{"inputs": ..., "parameters": {...}}`, or an image or
audio file itself; the answer is exactly what the pipeline returns (negotiation.py picks JSON or a file's bytes). `/v1/embeddings` takes OpenAI's `{"input": ..., "model": ...}`. Errors are
`{"error": message, "error_type": kind}` with the status the error table gives: 422 for bodies and inputs the
pipeline rejects (with the pipeline's own message), 500 for the rest.

Nothing here imports the web stack: a request is only read through its `headers` mapping and its `stream()`.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.limits import Limits
from onnxpipe.serving.media import raw_media_input

if TYPE_CHECKING:
    from starlette.requests import Request

log = logging.getLogger("onnxpipe.serve")
BODY_FIELDS = ("inputs", "parameters", "stream")
EMBEDDINGS_TASK = "feature-extraction"
EMBEDDINGS_FIELDS = ("input", "model", "encoding_format", "dimensions")
EMBEDDINGS_ENCODINGS = ("float", "base64")
TIMEOUT_HEADER = "x-request-timeout"


class RequestError(Exception):
    """An answer other than 200: HTTP status, a short kind (the metrics label) and a message for the client."""

    def __init__(self, status: int, kind: str, message: str, headers: Optional[dict[str, str]] = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON error body, Hugging Face style."""
        return {"error": self.message, "error_type": self.kind}


# -- who may ask, and for which model ------------------------------------------------------------
def authorized(headers: Mapping[str, str], api_key: Optional[str]) -> bool:
    """True without an api key, else when the request carries `Authorization: Bearer <key>` (constant-time compare)."""
    if api_key is None:
        return True
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def check_authorized(headers: Mapping[str, str], api_key: Optional[str]) -> None:
    """RequestError 401 (with the `WWW-Authenticate` challenge) unless `authorized`."""
    if not authorized(headers, api_key):
        raise RequestError(401, "unauthorized", "missing or wrong API key: send 'Authorization: Bearer <key>'.",
                           {"WWW-Authenticate": "Bearer"})


def find_model(pipes: Mapping[str, Any], name: str) -> Any:
    """The pipeline served under `name`; RequestError 404 listing the names otherwise. Models are loaded before
    the server starts and only looked up here: no request can make the server load a path."""
    if name not in pipes:
        raise RequestError(404, "not_found", f"no model named {name!r}; this server serves: {', '.join(pipes)}.")
    return pipes[name]


# -- limits: the body's size ---------------------------------------------------------------------
async def read_body(request: Request, limit: int) -> bytes:
    """The body, or RequestError 413 as soon as it passes `limit` bytes (declared or streamed): a client cannot make
    the server buffer more than `limit` bytes by lying in Content-Length or by not sending one."""
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


def check_body_size(body: bytes, limit: int) -> None:
    """RequestError 413 when an already-read body (Ray Serve reads it whole) is over `limit` bytes."""
    if len(body) > limit:
        raise RequestError(413, "body_too_large", f"the request body is larger than {limit} bytes.")


# -- deadlines -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Deadline:
    """When a request must be answered: `at` on the `time.monotonic()` clock, after `timeout` seconds granted.
    Passed from the route to the batcher wait and to the stream, so that every wait uses the same instant."""

    at: float
    timeout: float

    def remaining(self) -> float:
        """Seconds left, never below 0."""
        return max(0.0, self.at - time.monotonic())


def deadline_of(headers: Mapping[str, str], timeout_s: float) -> Deadline:
    """The request's deadline: `timeout_s` (--timeout) from now, or less when the client sends X-Request-Timeout
    (seconds; a client may shorten its deadline, never lengthen it). RequestError 400 for a bad header."""
    timeout = timeout_s
    header = headers.get(TIMEOUT_HEADER)
    if header is not None:
        try:
            asked = float(header)
        except ValueError:
            asked = -1.0
        if not asked > 0:
            raise RequestError(400, "invalid_request", f"X-Request-Timeout must be a positive number of seconds, got {header!r}.")
        timeout = min(timeout, asked)
    return Deadline(time.monotonic() + timeout, timeout)


def deadline_exceeded(name: str, deadline: Deadline, queued: int) -> RequestError:
    """The 504 of a request whose model did not answer in time, with what the client can change."""
    return RequestError(
        504, "deadline_exceeded",
        f"model {name!r} did not answer within the deadline of {deadline.timeout:g} s ({queued} requests queued); "
        "retry later, send fewer inputs, or allow more time (X-Request-Timeout header, --timeout).",
    )


# -- bodies --------------------------------------------------------------------------------------
def parse_json(body: bytes) -> Any:
    """The decoded body; RequestError 422 naming the problem when it is not JSON."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(422, "invalid_json", f"the request body is not valid JSON ({exc}).") from None
    except RecursionError:
        raise RequestError(422, "invalid_json", "the request body's JSON is nested too deeply to parse.") from None
    except ValueError as exc:  # e.g. an integer past Python's int-string conversion limit (4300 digits)
        raise RequestError(422, "invalid_json", f"the request body's JSON cannot be read ({exc}).") from None


def parse_inference(body: bytes, content_type: Optional[str] = None) -> tuple[Any, dict[str, Any]]:
    """(inputs, parameters) of a Hugging Face Inference API body, where streaming is not offered (Ray Serve)."""
    inputs, params, stream = parse_request(body, content_type)
    if stream:
        raise RequestError(422, "invalid_request", '"stream": true is served by the built-in server (onnxpipe serve without --ray).')
    return inputs, params


def parse_request(body: bytes, content_type: Optional[str] = None) -> tuple[Any, dict[str, Any], bool]:
    """(inputs, parameters, stream) of a Hugging Face Inference API body; RequestError 422 when it has another
    shape. A body that is an image or audio file itself (media.raw_media_input, given the request's Content-Type) is
    the input, without parameters. Parameters that would name the pipeline's input are checked against the model
    (check_parameters)."""
    raw = raw_media_input(body, content_type)
    if raw is not None:
        return raw, {}, False
    payload = parse_json(body)
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise RequestError(
            422, "invalid_request",
            'the body must be a JSON object {"inputs": ..., "parameters": {...}} (parameters optional); '
            f"got {type(payload).__name__}" + (f" with keys {sorted(payload)}" if isinstance(payload, dict) else "") + ".",
        )
    unknown = sorted(set(payload) - set(BODY_FIELDS))
    if unknown:
        raise RequestError(422, "invalid_request", f"unknown field(s) {unknown}: the body takes only 'inputs', 'parameters' and 'stream'.")
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(422, "invalid_request", f"'stream' must be true or false, got {stream!r}.")
    params = payload.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RequestError(422, "invalid_request", f"'parameters' must be a JSON object of pipeline options, got {type(params).__name__}.")
    if "streamer" in params:
        raise RequestError(422, "invalid_request", "parameters may not contain 'streamer': send \"stream\": true instead.")
    return payload["inputs"], params, stream


def check_parameters(pipe: Any, inputs: Any, params: dict[str, Any]) -> None:
    """RequestError 422 when `parameters` name the pipeline's input argument(s) (`inputs`, a zero-shot model's
    `sequences`, a VQA model's `question`...): those come in the body's "inputs" only, and passing both would make
    the call fail with a TypeError (a 500) instead of a message for the client."""
    clash = input_parameters(pipe, inputs, params)
    if clash:
        raise RequestError(422, "invalid_request", f"parameters may not contain {clash}: send the input in 'inputs'.")


def input_parameters(pipe: Any, inputs: Any, params: dict[str, Any]) -> list[str]:
    """The names in `params` that `pipe` would read as (part of) its input rather than as an option. A pipeline
    with a `call_arguments(args, kwargs) -> (inputs, options)` hook is asked, one name at a time (a TypeError means
    the name repeats the positional input); any other callable is read from its `__call__` signature."""
    split = getattr(pipe, "call_arguments", None)
    if not callable(split):
        return sorted(_positional_names(pipe) & set(params))
    clash = []
    for name, value in params.items():
        try:
            _, options = split((inputs,), {name: value})
        except TypeError:
            clash.append(name)
            continue
        except Exception:  # noqa: BLE001 - any other complaint is the pipeline's to make, with its own message
            continue
        if name not in options:
            clash.append(name)
    return sorted(clash)


def _positional_names(pipe: Any) -> frozenset[str]:
    """The names of the positional parameters of `pipe.__call__` (none when it has no readable signature)."""
    try:
        signature = inspect.signature(pipe.__call__)
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(
        name for name, p in signature.parameters.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


def parse_embeddings(body: bytes, pipes: Mapping[str, Any]) -> tuple[str, list[str], str, Optional[int]]:
    """(model name, texts, encoding format, dimensions) of an OpenAI embeddings body; RequestError naming what is wrong.
    Without "model", the one feature-extraction model served is used (422 when there are several or none)."""
    payload = parse_json(body)
    if not isinstance(payload, dict) or "input" not in payload:
        raise RequestError(422, "invalid_request", 'the body must be a JSON object {"input": str or [str], "model": name}.')
    unknown = sorted(set(payload) - set(EMBEDDINGS_FIELDS))
    if unknown:
        raise RequestError(
            422, "invalid_request",
            f"unsupported field(s) {unknown}: onnxpipe's /v1/embeddings takes {', '.join(EMBEDDINGS_FIELDS)} "
            "(`user` is not implemented).",
        )
    name = _embedding_model(payload.get("model"), pipes)
    texts = payload["input"]
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise RequestError(
            422, "invalid_request", "'input' must be a string or a non-empty list of strings (token-id inputs are not supported)."
        )
    encoding = payload.get("encoding_format") or "float"
    if encoding not in EMBEDDINGS_ENCODINGS:
        raise RequestError(422, "invalid_request", f"encoding_format must be 'float' or 'base64', got {encoding!r}.")
    dimensions = payload.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1):
        raise RequestError(422, "invalid_request", f"dimensions must be a positive int, got {dimensions!r}.")
    return name, texts, encoding, dimensions


def _embedding_model(name: Any, pipes: Mapping[str, Any]) -> str:
    """The served feature-extraction model an embeddings body names (or the only one); RequestError otherwise."""
    embedders = [n for n, pipe in pipes.items() if getattr(pipe, "task", None) == EMBEDDINGS_TASK]
    if name is None:
        if len(embedders) != 1:
            raise RequestError(422, "invalid_request", f"pass \"model\": one of the feature-extraction models {embedders}.")
        name = embedders[0]
    if not isinstance(name, str):
        raise RequestError(422, "invalid_request", f"'model' must be a model name string, got {type(name).__name__}.")
    pipe = find_model(pipes, name)
    if getattr(pipe, "task", None) != EMBEDDINGS_TASK:
        raise RequestError(
            422, "invalid_request",
            f"model {name!r} is a {pipe.task} model; /v1/embeddings needs a feature-extraction model: {embedders or 'none served'}.",
        )
    return name


def check_input_count(count: int, limits: Limits) -> None:
    """RequestError 422 naming the limit when a request holds more inputs than `limits.max_inputs_per_request`
    (for routes that split a request into jobs, whose pipeline calls never see the whole list)."""
    try:
        limits.check_inputs(count)
    except InvalidInputError as exc:
        raise RequestError(422, "invalid_input", str(exc)) from None


# -- answers to failures -------------------------------------------------------------------------
def pipeline_error(exc: BaseException, model: str) -> RequestError:
    """The answer to an exception a pipeline call raised: 422 with its message for inputs and options the
    pipeline rejects, 500 (logged with its traceback) for anything else."""
    if isinstance(exc, (InvalidInputError, InvalidOptionError)):
        return RequestError(422, "invalid_input", str(exc))
    log.error("model %r: unexpected %s while answering a request", model, type(exc).__name__, exc_info=exc)
    return RequestError(
        500, "internal", f"model {model!r} failed with an unexpected {type(exc).__name__}; the server logged the details."
    )
