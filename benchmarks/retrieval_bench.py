"""Retrieval speed: a bert-base-size reranker (text-ranking, one query against 32 documents) and a bert-base-size
SPLADE model (sparse-embedding of 32 texts), random weights, onnxpipe (fp32 and int8) against sentence-transformers
on torch (CrossEncoder.rank, SparseEncoder.encode) in one run, same machine, same inputs.

    python benchmarks/retrieval_bench.py [--rounds 5] [--threads 2] [--markdown FILE]

Speed does not depend on weight values. Each engine runs every call `--rounds` times after one warm-up call; the
table gives the median and the ratio to torch. The engines run one after another in this process, alternating
round by round, so drift in a shared machine's speed hits them alike. Building the checkpoints needs the export and
test extras (torch, transformers, sentence-transformers) once; later runs reuse them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from serve_bench import texts  # noqa: E402

from onnxpipe_bench.models import build_random_checkpoint, export_folder  # noqa: E402

QUERY = "where can we find a small cafe near the old bridge in town"


def splade_folder(work: Path) -> Path:
    """A bert-base masked LM with random weights, saved as a sentence-transformers SparseEncoder folder."""
    folder = work / "checkpoints" / "bert-base-splade"
    if (folder / "modules.json").is_file():
        return folder
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    mlm = build_random_checkpoint("bert", "fill-mask", work / "checkpoints" / "bert-base-fill-mask")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SparseEncoder(modules=[Transformer(str(mlm), transformer_task="fill-mask"), SpladePooling("max")], device="cpu")
        model.save(str(folder))
    return folder


def engines(work: Path) -> dict[str, dict[str, Callable[[list[str]], Any]]]:
    """workload -> engine name -> a call on 32 texts."""
    import torch
    from sentence_transformers import CrossEncoder, SparseEncoder

    from onnxpipe import pipeline

    ranker_ckpt = build_random_checkpoint("bert", "text-ranking", work / "checkpoints" / "bert-base-text-ranking")
    ranker = export_folder(ranker_ckpt, "text-ranking", work / "onnx" / "bert-base-text-ranking")
    splade_ckpt = splade_folder(work)
    splade = export_folder(splade_ckpt, "sparse-embedding", work / "onnx" / "bert-base-sparse-embedding")
    torch.set_num_threads(torch.get_num_threads())
    cross = CrossEncoder(str(ranker_ckpt), device="cpu")
    sparse = SparseEncoder(str(splade_ckpt), device="cpu")
    found = {"reranker (1 query x 32 documents)": {"sentence-transformers torch": lambda docs: cross.rank(QUERY, docs)},
             "SPLADE (32 texts)": {"sentence-transformers torch": lambda docs: sparse.encode(docs)}}
    for dtype in ("fp32", "int8"):
        rank = pipeline("text-ranking", model=str(ranker), dtype=dtype)
        encode = pipeline("sparse-embedding", model=str(splade), dtype=dtype)
        found["reranker (1 query x 32 documents)"][f"onnxpipe {dtype}"] = lambda docs, rank=rank: rank(QUERY, docs)
        found["SPLADE (32 texts)"][f"onnxpipe {dtype}"] = lambda docs, encode=encode: encode(docs, batch_size=32)
    return found


def measure(calls: dict[str, Callable[[list[str]], Any]], docs: list[str], rounds: int) -> dict[str, float]:
    """Median seconds per call of each engine, engines alternating round by round."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call(docs)  # warm-up
    for r in range(rounds):
        order = list(calls) if r % 2 == 0 else list(reversed(calls))
        for name in order:
            started = time.perf_counter()
            calls[name](docs)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def markdown(results: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    lines = [
        f"bert-base size, random weights; {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"torch and onnxruntime at {args.threads} threads; 32 texts of 4-48 words; median of {args.rounds} calls after "
        "a warm-up, engines alternating; speed-up = torch time / engine time.",
        "",
        "| workload | engine | ms per call | speed-up vs torch |",
        "|---|---|---:|---:|",
    ]
    for workload, timings in results.items():
        base = timings["sentence-transformers torch"]
        for name, seconds in timings.items():
            lines.append(f"| {workload} | {name} | {seconds * 1000:.1f} | {base / seconds:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=str(ROOT / "out" / "bench"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--markdown", help="write the table here")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    docs = texts(32, seed=1)
    results = {workload: measure(calls, docs, args.rounds) for workload, calls in engines(Path(args.work)).items()}
    table = markdown(results, args)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
