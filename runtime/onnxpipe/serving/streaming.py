"""`"stream": true` on POST /models/{name}: text as it is generated, as Server-Sent Events in the shape of
Hugging Face's text-generation-inference (TGI), which `huggingface_hub.InferenceClient.text_generation(stream=True)`
reads: one `data: {"index", "token": {"text", "special"}, "generated_text": null, "details": null}` event per
piece, and on the LAST piece's event `generated_text` holds the whole text. A failure once events have started is an
`{"error", "error_type"}` event; everything that can be refused is refused before the first byte: the options,
beam search and several sequences (a stream is one sequence), and the first run of the model (an empty or too
long prompt), whose failure is an ordinary 422 / 500 / 504 JSON answer.

Any pipeline with a `stream(inputs, **options)` method streams; the others answer 422. Streams bypass the
batching queue: each one generates in its own thread, under a CancelToken (onnxpipe.cancellation) that the
request's deadline, a client that disconnects, and a forced shutdown cancel.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Optional

from starlette.responses import StreamingResponse

from onnxpipe.cancellation import CancelToken, cancel_scope
from onnxpipe.errors import CancelledError, InvalidInputError, InvalidOptionError
from onnxpipe.serving.protocol import Deadline, RequestError, deadline_exceeded, pipeline_error
from onnxpipe.serving.state import ServerState

# TGI's flags that huggingface_hub's client always sends; false (TGI's default) is honoured, true is not implemented
TGI_FLAGS = ("details", "decoder_input_details", "watermark")


def sse(data: Any) -> bytes:
    """One Server-Sent Event carrying `data` as JSON."""
    return f"data: {json.dumps(data)}\n\n".encode()


def tgi_flags(params: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's options: `params` without TGI's flags when they are false; RequestError 422 when one is
    set (onnxpipe has no token ids, logprobs or watermark to report)."""
    for key in TGI_FLAGS:
        if key in params and params[key] is not False:
            raise RequestError(422, "invalid_input", f"parameter {key!r}={params[key]!r} is not implemented by onnxpipe's "
                               "streams; leave it false (streams carry text pieces only).")
    return {k: v for k, v in params.items() if k not in TGI_FLAGS}


def check_streamable(pipe: Any, name: str, inputs: Any, params: dict[str, Any]) -> None:
    """RequestError 422 before any byte is sent: the model cannot stream, or the options or input are bad, or
    they ask for beam search or several sequences (a stream carries one sequence, generated token by token)."""
    if not callable(getattr(pipe, "stream", None)):
        raise RequestError(422, "invalid_request", f"model {name!r} ({getattr(pipe, 'task', '?')}) does not stream: "
                           "streaming is for the generation tasks; drop \"stream\": true.")
    try:
        options = pipe.check_options(params, pipe.defaults)
        _, single = pipe.split_inputs(inputs)
        config = pipe.resolve(options) if callable(getattr(pipe, "resolve", None)) else None
    except (InvalidInputError, InvalidOptionError) as exc:
        raise RequestError(422, "invalid_input", str(exc)) from None
    if not single:
        raise RequestError(422, "invalid_input", "a streamed request takes one input, not a list; send one request per input.")
    for option in ("num_beams", "num_return_sequences"):
        value = getattr(config, option, 1)
        if isinstance(value, int) and value > 1:
            raise RequestError(422, "invalid_input", f"{option}={value} cannot be streamed: a stream carries one sequence, "
                               f"generated greedily or by sampling; set {option}=1 or drop \"stream\": true.")


async def stream_response(state: ServerState, name: str, pipe: Any, inputs: Any, params: dict[str, Any],
                          deadline: Deadline) -> StreamingResponse:
    """The event stream of one generation. Checked first, and the answer starts only once the model has produced
    its first piece (or finished): until then every failure is a plain JSON error (422 / 500 / 504), not an
    event. The request counts as in flight until its last event."""
    options = tgi_flags(params)
    check_streamable(pipe, name, inputs, options)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    token = CancelToken()

    def produce() -> None:
        try:
            with cancel_scope(token):
                for piece in pipe.stream(inputs, **options):
                    loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece))
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
        except BaseException as exc:  # handed to the client as an error answer or event
            try:
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
            except RuntimeError:  # the event loop is closed: nobody listens any more
                pass

    state.tokens.add(token)
    try:
        loop.run_in_executor(None, produce)
        first = await _next(queue, deadline, token)
        if first is None:
            raise deadline_exceeded(name, deadline, 0)
        if first[0] == "error":
            raise _failure(first[1], name)
    except BaseException:
        token.cancel("the request failed before its stream started")
        state.tokens.discard(token)
        raise
    return StreamingResponse(_events(state, name, queue, first, deadline, token),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _next(queue: asyncio.Queue, deadline: Deadline, token: CancelToken) -> Optional[tuple[str, Any]]:
    """The producer's next (kind, value), or None (and the work cancelled) once the deadline passes."""
    try:
        return await asyncio.wait_for(queue.get(), deadline.remaining())
    except asyncio.TimeoutError:
        token.cancel("the request's deadline passed")
        return None


def _failure(exc: BaseException, name: str) -> RequestError:
    """The answer to the exception a stream's generation raised (a cancelled one: 503, the server stopped it)."""
    if isinstance(exc, CancelledError):
        return RequestError(503, "cancelled", f"model {name!r}: {exc}.", {"Retry-After": "1"})
    return pipeline_error(exc, name)


async def _events(state: ServerState, name: str, queue: asyncio.Queue, first: tuple[str, Any], deadline: Deadline,
                  token: CancelToken) -> AsyncIterator[bytes]:
    """The SSE bytes. Each piece is sent when the next one arrives, so that the last piece's event can carry
    `generated_text`, as TGI's does. A client that goes away (the generator is closed) cancels the generation."""
    state.in_flight += 1
    pieces: list[str] = []
    held: Optional[str] = None
    try:
        item: Optional[tuple[str, Any]] = first
        while True:
            if held is not None and (item is None or item[0] == "error"):  # the text so far, then the error
                yield sse(_event(len(pieces) - 1, held, None))
                held = None
            if item is None:
                yield sse({"error": f"model {name!r} did not finish within the request's deadline; ask for fewer "
                           "new tokens or allow more time (X-Request-Timeout header, --timeout).", "error_type": "deadline_exceeded"})
                return
            kind, value = item
            if kind == "piece":
                if held is not None:
                    yield sse(_event(len(pieces) - 1, held, None))
                pieces.append(value)
                held = value
            elif kind == "end":
                yield sse(_event(max(0, len(pieces) - 1), held or "", "".join(pieces)))
                return
            else:
                yield sse(_failure(value, name).body())
                return
            item = await _next(queue, deadline, token)
    finally:
        token.cancel("the stream ended")  # a no-op once generation finished; stops it when the client left
        state.tokens.discard(token)
        state.in_flight -= 1


def _event(index: int, piece: str, generated_text: Optional[str]) -> dict[str, Any]:
    """One TGI stream event. onnxpipe streams text pieces (whole words, as transformers' TextStreamer), not single
    tokens, so a token carries its text and `special: false` but no id or logprob."""
    return {"index": index, "token": {"text": piece, "special": False}, "generated_text": generated_text, "details": None}
