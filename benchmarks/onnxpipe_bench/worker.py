"""One engine in its own process: `python -m onnxpipe_bench.worker ENGINE_JSON`.

It loads the engine, runs the first request read from stdin and answers "ready" (the parent times the whole
process, start to that answer: the cold start), then serves JSON-line requests: `inputs` (store inputs under a
key), `time` (timed calls on stored inputs), `stats` (peak RSS, whether torch got imported), `quit`.
The onnxpipe engine runs with torch, transformers and optimum made unimportable, to prove it needs none.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any, TextIO

# taken before the project imports below, so that a worker's load_s counts importing its engine
STARTED = time.perf_counter()

from .clips import decode_clips  # noqa: E402
from .engine_spec import EngineSpec  # noqa: E402
from .engines import load_engine  # noqa: E402
from .images import decode_images  # noqa: E402

BLOCKED = ("torch", "transformers", "optimum", "onnxpipe_export")


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB: VmHWM of /proc/self/status on Linux. Not ru_maxrss: Linux
    carries it over from the parent through fork and exec, so a worker started by a harness that had grown to 3.8 GB
    (building real-size models in-process) reported 3.8 GB for every engine."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def heavy_modules_loaded() -> list[str]:
    """Which of torch, transformers, optimum, onnxpipe_export this process has imported."""
    return sorted(name for name in BLOCKED if sys.modules.get(name) is not None)


def _protocol_stream() -> TextIO:
    """A private copy of stdout for answers; fd 1 then points at stderr so library prints cannot corrupt them."""
    stream = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def serve(engine: dict[str, Any], requests: TextIO, answers: TextIO) -> None:
    """Load `engine`, run the first request, then answer requests until `quit` or end of input."""
    if engine["kind"] == "onnxpipe":  # the onnxpipe package's own imports (above) are checked by heavy_modules_loaded
        for name in BLOCKED:
            sys.modules[name] = None  # any import of them now raises ImportError
    spec = EngineSpec(**engine)
    pipe, timer = load_engine(spec)
    loaded = time.perf_counter()
    first = json.loads(requests.readline())
    if first.get("audio"):
        first["inputs"] = decode_clips(first["inputs"])
    pipe(first["inputs"], **first["options"])
    done = time.perf_counter()
    reply = {"event": "ready", "load_s": loaded - STARTED, "first_call_s": done - loaded, "rss_mb": peak_rss_mb()}
    answers.write(json.dumps(reply) + "\n")
    stored: dict[str, tuple[Any, dict[str, Any]]] = {}
    for line in requests:
        request = json.loads(line)
        op = request["op"]
        if op == "quit":
            break
        if op == "inputs":
            inputs = request["inputs"]
            if request.get("images"):  # decoded once here: timed calls then measure pre-processing, not PNG decoding
                inputs = decode_images(inputs)
            elif request.get("audio"):
                inputs = decode_clips(inputs)
            stored[request["key"]] = (inputs, request["options"])
            reply = {"ok": True}
        elif op == "time":
            inputs, options = stored[request["key"]]
            total, core, steps = [], [], []
            for _ in range(request.get("calls", 1)):
                timer.reset()
                started = time.perf_counter()
                pipe(inputs, **options)
                total.append(time.perf_counter() - started)
                core.append(timer.seconds)
                steps.append(timer.calls)
            reply = {"total": total, "core": core}
            if timer.counts:  # generation: decoder steps per call
                reply["steps"] = steps
        elif op == "stats":
            reply = {"peak_rss_mb": peak_rss_mb(), "heavy_modules": heavy_modules_loaded()}
        else:
            reply = {"error": f"unknown op {op!r}"}
        answers.write(json.dumps(reply) + "\n")


def main() -> None:
    """Entry point: the engine spec is argv[1] (JSON); requests come on stdin, answers go to the original stdout."""
    answers = _protocol_stream()
    try:
        serve(json.loads(sys.argv[1]), sys.stdin, answers)
    except BaseException as exc:  # report any failure as one answer line, then exit non-zero
        answers.write(json.dumps({"event": "error", "error": f"{type(exc).__name__}: {exc}"[:2000]}) + "\n")
        raise


if __name__ == "__main__":
    main()
