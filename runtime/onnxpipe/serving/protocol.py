"""Request bodies and error answers, shared by the HTTP app and the Ray Serve deployment.

The body is the Hugging Face Inference API's: `{"inputs": ..., "parameters": {...}}`; the answer is exactly
what the pipeline returns. Errors are `{"error": message, "error_type": kind}` with the status the issue's table
gives: 422 for bodies and inputs the pipeline rejects (with the pipeline's own message), 500 for the rest.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Optional

from onnxpipe.errors import InvalidInputError, InvalidOptionError

log = logging.getLogger("onnxpipe.serve")
BODY_FIELDS = ("inputs", "parameters", "stream")


class RequestError(Exception):
    """An answer other than 200: HTTP status, a short kind (the metrics label) and a message for the client."""

    def __init__(self, status: int, kind: str, message: str, headers: Optional[dict[str, str]] = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON error body, Hugging Face style."""
        return {"error": self.message, "error_type": self.kind}


def parse_json(body: bytes) -> Any:
    """The decoded body; RequestError 422 naming the problem when it is not JSON."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(422, "invalid_json", f"the request body is not valid JSON ({exc}).") from None


def parse_inference(body: bytes, reserved: frozenset[str] = frozenset()) -> tuple[Any, dict[str, Any]]:
    """(inputs, parameters) of a Hugging Face Inference API body, where streaming is not offered (Ray Serve)."""
    inputs, params, stream = parse_request(body, reserved)
    if stream:
        raise RequestError(422, "invalid_request", '"stream": true is served by the built-in server (onnxpipe serve without --ray).')
    return inputs, params


def parse_request(body: bytes, reserved: frozenset[str] = frozenset()) -> tuple[Any, dict[str, Any], bool]:
    """(inputs, parameters, stream) of a Hugging Face Inference API body; RequestError 422 when it has another
    shape. `reserved` names parameters that would collide with the pipeline's input argument."""
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
    clash = sorted(reserved & set(params))
    if clash:
        raise RequestError(422, "invalid_request", f"parameters may not contain {clash}: send the input in 'inputs'.")
    if "streamer" in params:
        raise RequestError(422, "invalid_request", "parameters may not contain 'streamer': send \"stream\": true instead.")
    return payload["inputs"], params, stream


def pipeline_error(exc: BaseException, model: str) -> RequestError:
    """The answer to an exception a pipeline call raised: 422 with its message for inputs and options the
    pipeline rejects, 500 (logged with its traceback) for anything else."""
    if isinstance(exc, (InvalidInputError, InvalidOptionError)):
        return RequestError(422, "invalid_input", str(exc))
    log.error("model %r: unexpected %s while answering a request", model, type(exc).__name__, exc_info=exc)
    return RequestError(
        500, "internal", f"model {model!r} failed with an unexpected {type(exc).__name__}; the server logged the details."
    )
