"""The serving code's own CPU cost per request, without a model or a network: Job creation and the batching queue
round trip (`ServerState.infer` -> batcher thread -> Coalescer -> an echo pipeline), at concurrency 32, in process.

    python benchmarks/serve_request_cost.py [--old /tmp/old/runtime] [--runs 5] [--requests 3000]

With `--old` (a directory holding an older `onnxpipe` package) each run measures the old code and this checkout in
turn, in fresh subprocesses, so the two can be compared on a machine whose speed drifts. The figure is process CPU
time (all threads) per request in microseconds: what the hardening of the request path costs, to be set against a
model's own time per request (about 3,600 us of CPU for all-MiniLM-L6-v2 int8 on short texts at concurrency 32).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Optional

CHILD = r"""
import asyncio, json, sys, time
from onnxpipe.serving.coalesce import Job
from onnxpipe.serving.config import ModelSpec, ServeConfig
from onnxpipe.serving.protocol import deadline_of
from onnxpipe.serving.state import ServerState


class Echo:
    task = "text-classification"

    def __call__(self, inputs, **options):
        return inputs


async def connected():
    return False


async def main(n):
    state = ServerState({"m": Echo()}, ServeConfig(models=(ModelSpec.parse("m=."),), max_wait_ms=0))
    gate = asyncio.Semaphore(32)

    async def one(i):
        async with gate:
            deadline = deadline_of({}, 30)
            try:
                return await state.infer("m", [Job(f"text {i}", {})], deadline, connected)
            except TypeError:  # older code: no disconnect check
                return await state.infer("m", [Job(f"text {i}", {})], deadline)

    await asyncio.gather(*(one(i) for i in range(500)))  # warm-up
    cpu = time.process_time()
    await asyncio.gather(*(one(i) for i in range(n)))
    used = (time.process_time() - cpu) / n * 1e6
    jobs = time.process_time()
    for i in range(n):
        Job(f"text {i}", {})
    state.close()
    return {"request_us": used, "job_us": (time.process_time() - jobs) / n * 1e6}


print(json.dumps(asyncio.run(main(int(sys.argv[1])))))
"""


def measure(source: Optional[str], requests: int) -> dict[str, float]:
    """One run in a fresh process, importing onnxpipe from `source` (None: this checkout)."""
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = source + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", CHILD, str(requests)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", help="directory holding an older onnxpipe package to compare with")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args(argv)
    sides = {"old": args.old, "new": None} if args.old else {"new": None}
    results: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    started = time.time()
    for run in range(args.runs):
        for side in (sides if run % 2 == 0 else list(reversed(list(sides)))):
            results[side].append(measure(sides[side], args.requests))
    print(f"{args.runs} runs of {args.requests} requests at concurrency 32 ({time.time() - started:.0f} s); CPU us per request:")
    for side, rows in results.items():
        request = [r["request_us"] for r in rows]
        job = [r["job_us"] for r in rows]
        print(f"  {side}: request round trip median {statistics.median(request):.1f} (range {min(request):.1f}-"
              f"{max(request):.1f}); Job creation median {statistics.median(job):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
