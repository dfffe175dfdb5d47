"""What the serving code itself costs: the same model folders served by two versions of onnxpipe at once (this
checkout and an older source tree), measured in alternating short windows so that drift in a shared machine's
speed hits both sides alike.

    python benchmarks/serve_overhead.py --old /tmp/old/runtime [--rounds 12] [--seconds 3] [--markdown FILE]
                                        [--model tiny=out/tiny-classifier]

`--old` is a directory that holds an older `onnxpipe` package (e.g. `git worktree add /tmp/old <commit>`, then
`/tmp/old/runtime`). For each cell (model, input mix, concurrency, batching on) both servers take turns, the order
flipping every round; each round gives one new/old throughput ratio and the cell reports their median and spread.
A single A-then-B pair on a shared machine was seen to move by up to 2x; the median of many interleaved short
windows is what this script is for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import serve_bench as bench


def start(folder: Path, source: Optional[Path], batch: int, wait_ms: float, log: Path,
          extra: Sequence[str] = ()) -> tuple[int, subprocess.Popen]:
    """One server for `folder`, from `source` (an older package directory) or from this checkout, with `extra`
    flags."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source) + os.pathsep + env.get("PYTHONPATH", "")
    port = bench.free_port()
    return port, bench.start_server(folder, port, batch, wait_ms, log, env=env, extra=extra)


def version_of(source: Optional[Path]) -> str:
    """The package path a server imports, to prove the two sides differ."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", "import onnxpipe; print(onnxpipe.__file__)"], env=env,
                          capture_output=True, text=True, check=True).stdout.strip()


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every cell: `rounds` alternating windows per side, one ratio per round."""
    rows = []
    models = ({name: (Path(folder), "", {}) for name, folder in (m.split("=", 1) for m in args.model)} if args.model
              else {name: spec for name, spec in bench.model_folders(Path(args.work)).items() if args.only.lower() in name.lower()})
    for name, (folder, _what, params) in models.items():
        servers = {}
        try:
            for side, source, extra in (("old", Path(args.old) if args.old else None, args.old_args.split()),
                                        ("new", None, args.new_args.split())):
                servers[side] = start(folder, source, args.max_batch_size, args.max_wait_ms,
                                      Path(args.work) / f"overhead-{side}.log", extra)
            for mix in args.mixes:
                corpus = bench.texts(512, bench.MIXES[mix])
                for concurrency in args.concurrency:
                    throughput: dict[str, list[float]] = {"old": [], "new": []}
                    cpu_ms: dict[str, list[float]] = {"old": [], "new": []}
                    for r in range(args.rounds):
                        order = ("old", "new") if r % 2 == 0 else ("new", "old")
                        for side in order:
                            port, proc = servers[side]
                            payloads = [bench.request_bytes(port, "/models/m", {"inputs": t, "parameters": params}) for t in corpus]
                            before = bench.process_seconds([proc.pid])
                            result = bench.asyncio.run(bench.closed_loop(port, payloads, concurrency, args.warmup, args.seconds))
                            used = bench.process_seconds([proc.pid]) - before
                            if result["errors"]:
                                raise SystemExit(f"{side} server answered {result['errors']} errors")
                            throughput[side].append(result["throughput"])
                            cpu_ms[side].append(1000 * used / max(1, result["answered_total"]))
                    ratios = [n / o if o else float("nan") for n, o in zip(throughput["new"], throughput["old"])]
                    cpu_ratios = [n / o for n, o in zip(cpu_ms["new"], cpu_ms["old"])]
                    row = {
                        "model": name, "inputs": mix, "concurrency": concurrency,
                        "old_req_s": statistics.median(throughput["old"]), "new_req_s": statistics.median(throughput["new"]),
                        "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                        "ratios": ratios,
                        "old_cpu_ms": statistics.median(cpu_ms["old"]), "new_cpu_ms": statistics.median(cpu_ms["new"]),
                        "cpu_ratio_median": statistics.median(cpu_ratios), "cpu_ratios": cpu_ratios,
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            for _, proc in servers.values():
                bench.stop_server(proc)
    return rows


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"`onnxpipe serve`, int8, batching on (`--max-batch-size {args.max_batch_size} --max-wait-ms {args.max_wait_ms:g}`), "
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), client on the same machine; old = "
        f"`{args.old or 'this checkout'}` {args.old_args}, new = this checkout {args.new_args}, both servers up at once; {args.rounds} rounds of {args.seconds:g} s per side (after "
        f"{args.warmup:g} s warm-up), order flipped each round. Throughput ratio = new / old req/s within a round; "
        "CPU per request = the server process's CPU time (all threads) over the requests it answered in the window, "
        "which other load on a shared machine disturbs far less than wall-clock throughput.",
        "",
        "| model | inputs | concurrency | old req/s | new req/s | new/old req/s (median) | range | old CPU ms/req | new CPU ms/req | new/old CPU (median) |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['inputs']} | {r['concurrency']} | {r['old_req_s']:.1f} | {r['new_req_s']:.1f} | "
            f"{r['ratio_median']:.3f} | {r['ratio_min']:.2f}-{r['ratio_max']:.2f} | {r['old_cpu_ms']:.2f} | "
            f"{r['new_cpu_ms']:.2f} | {r['cpu_ratio_median']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", help="directory holding the older onnxpipe package (default: this checkout on both "
                        "sides, to compare server flags)")
    parser.add_argument("--old-args", default="", help="extra `onnxpipe serve` flags of the old side")
    parser.add_argument("--new-args", default="", help="extra `onnxpipe serve` flags of the new side, e.g. '--max-batch-tokens 2048'")
    parser.add_argument("--work", default=str(bench.ROOT / "out" / "bench"))
    parser.add_argument("--model", action="append", default=[], metavar="NAME=FOLDER",
                        help="serve these exported folders (no parameters) instead of the bench's two models; a tiny model "
                             "shows the serving code's own cost per request")
    parser.add_argument("--only", default="", help="only the bench models whose name contains this (e.g. MiniLM)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[32])
    parser.add_argument("--mixes", type=lambda s: s.split(","), default=list(bench.MIXES))
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--markdown", help="write the table here")
    args = parser.parse_args(argv)
    old, new = version_of(Path(args.old) if args.old else None), version_of(None)
    if args.old and old == new:
        raise SystemExit(f"--old {args.old} does not hold an onnxpipe package: both sides import {new}")
    if not args.old and args.old_args == args.new_args:
        raise SystemExit("without --old, give the two sides different flags (--old-args / --new-args)")
    print(f"old: {old}\nnew: {new}", file=sys.stderr)
    rows = run(args)
    bench.write_outputs(rows, markdown(rows, args), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
