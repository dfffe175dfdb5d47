"""`"stream": true` on POST /models/{name}: text as it is generated, as Server-Sent Events in the shape of
Hugging Face's text-generation-inference: one `data: {"index", "token": {"text"}, "generated_text": null}` event
per piece, then `data: {"index", "token": null, "generated_text": ALL}`; a failure mid-way is an
`{"error", "error_type"}` event. Any pipeline with a `stream(inputs, **options)` method streams; the others answer
422. Streams bypass the batching queue: each one generates in its own thread.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

from starlette.responses import StreamingResponse

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.serving.protocol import Deadline, RequestError, pipeline_error
from onnxpipe.serving.state import ServerState


def sse(data: Any) -> bytes:
    """One Server-Sent Event carrying `data` as JSON."""
    return f"data: {json.dumps(data)}\n\n".encode()


def check_streamable(pipe: Any, name: str, inputs: Any, params: dict[str, Any]) -> None:
    """RequestError 422 before any byte is sent: the model cannot stream, or the options or input are bad."""
    if not callable(getattr(pipe, "stream", None)):
        raise RequestError(422, "invalid_request", f"model {name!r} ({getattr(pipe, 'task', '?')}) does not stream: "
                           "streaming is for the generation tasks; drop \"stream\": true.")
    try:
        pipe.check_options(params, pipe.defaults)
        _, single = pipe.split_inputs(inputs)
    except (InvalidInputError, InvalidOptionError) as exc:
        raise RequestError(422, "invalid_input", str(exc)) from None
    if not single:
        raise RequestError(422, "invalid_input", "a streamed request takes one input, not a list; send one request per input.")


def stream_response(state: ServerState, name: str, pipe: Any, inputs: Any, params: dict[str, Any],
                    deadline: Deadline) -> StreamingResponse:
    """The event stream of one generation, checked first (422 before any byte); the request counts as in flight
    until its last event, and ends with an error event once `deadline` passes."""
    check_streamable(pipe, name, inputs, params)
    return StreamingResponse(_events(state, name, pipe, inputs, params, deadline), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(state: ServerState, name: str, pipe: Any, inputs: Any, params: dict[str, Any],
                  deadline: Deadline) -> AsyncIterator[bytes]:
    """The SSE bytes: the pipeline's `stream()` runs in a worker thread and hands pieces over through a queue."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def produce() -> None:
        try:
            for piece in pipe.stream(inputs, **params):
                loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece))
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
        except BaseException as exc:  # handed to the client as an error event
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

    state.in_flight += 1
    try:
        loop.run_in_executor(None, produce)
        pieces: list[str] = []
        while True:
            try:
                kind, value = await asyncio.wait_for(queue.get(), deadline.remaining())
            except asyncio.TimeoutError:
                yield sse({"error": f"model {name!r} did not finish within the request's deadline; ask for fewer "
                           "new tokens or allow more time (X-Request-Timeout header, --timeout).", "error_type": "deadline_exceeded"})
                return
            if kind == "piece":
                yield sse({"index": len(pieces), "token": {"text": value}, "generated_text": None})
                pieces.append(value)
            elif kind == "end":
                yield sse({"index": len(pieces), "token": None, "generated_text": "".join(pieces)})
                return
            else:
                yield sse(pipeline_error(value, name).body())
                return
    finally:
        state.in_flight -= 1
