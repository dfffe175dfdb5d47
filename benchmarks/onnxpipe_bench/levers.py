"""`python -m onnxpipe_bench.levers`: measure the speed levers of the onnxpipe runtime on one model file.

1. Session settings, each in its own onnxpipe worker process, timed like `onnxpipe bench` (alternating call by
   call): graph optimization level, a saved pre-optimized model loaded with optimizations off, intra-op threads,
   spinning. For each: session creation time (its share of cold start) and the pipeline / `session.run` medians.
2. Where a fresh onnxpipe process spends its cold start (torch blocked): imports, manifest + sha256 check,
   session creation, tokenizer, first call.
3. Where one pipeline call spends its time besides `session.run`: tokenize, pad, feed checks, post-process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from onnxpipe import pipeline

from .bench import BenchOptions, time_configuration
from .engine_onnxpipe import lever_session_options
from .engine_spec import EngineSpec
from .inputs import make_texts
from .process import Worker
from .report import markdown_table
from .stats import summarize


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return 1000 * statistics.median(samples)


VARIANTS: tuple[dict[str, Any], ...] = (
    {"label": "ORT_ENABLE_ALL (default)"},
    {"label": "ORT_DISABLE_ALL", "level": "ORT_DISABLE_ALL"},
    {"label": "ORT_ENABLE_BASIC", "level": "ORT_ENABLE_BASIC"},
    {"label": "ORT_ENABLE_EXTENDED", "level": "ORT_ENABLE_EXTENDED"},
    {"label": "saved optimized model", "level": "ORT_DISABLE_ALL", "file": "optimized"},
    {"label": "1 intra-op thread", "threads": 1},
    {"label": "no spinning", "spinning": False},
    {"label": "1 thread, no spinning", "threads": 1, "spinning": False},
    {"label": "no memory pattern", "mem_pattern": False},
    {"label": "no CPU memory arena", "arena": False},
)


def save_optimized(path: Path, output: Path) -> Path:
    """Write the graph as onnxruntime optimizes it at load (ORT_ENABLE_EXTENDED: portable across CPUs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(output)
    ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return output


def creation_ms(path: Path, settings: dict[str, Any], repeat: int = 3) -> float:
    """Median ms to create the session of a variant, in this process (no run happens meanwhile)."""
    import onnxruntime as ort

    file = str(settings.get("file") or path)
    return _median_ms(lambda: ort.InferenceSession(file, sess_options=lever_session_options(settings),
                                                   providers=["CPUExecutionProvider"]), repeat)


def measure_sessions(model: Path, task: str, dtype: str, path: Path, texts: list[str], batch_sizes: list[int],
                     rounds: int) -> list[dict[str, Any]]:
    """Per variant and batch size: session creation ms and whole-pipeline / session.run medians, each variant in
    its own onnxpipe worker process, alternating call by call as `onnxpipe bench` does."""
    with tempfile.TemporaryDirectory() as tmp:
        optimized = str(save_optimized(path, Path(tmp) / path.name))
        variants = [{**v, "file": optimized} if v.get("file") else dict(v) for v in VARIANTS]
        created = {v["label"]: creation_ms(path, v) for v in variants}
        specs = [EngineSpec("onnxpipe", task, str(model), dtype=dtype, session=v) for v in variants]
        workers = [Worker(spec, texts[:1], {"batch_size": 1}) for spec in specs]
        rows = []
        try:
            for batch in batch_sizes:
                key = f"b{batch}"
                for worker in workers:
                    worker.request({"op": "inputs", "key": key, "inputs": texts[:batch], "options": {"batch_size": batch}})
                times, failed = time_configuration(workers, key, BenchOptions(model=str(model), runs=rounds, time_limit=300))
                if failed:
                    raise RuntimeError(f"lever variants failed: {failed}")
                base = None
                for spec in specs:
                    summary = summarize(*times[spec.name], items=batch)
                    base = base or summary["median_ms"]
                    rows.append({"variant": spec.session["label"], "batch_size": batch, "create_ms": created[spec.session["label"]],
                                 "median_ms": summary["median_ms"], "core_median_ms": summary["core_median_ms"],
                                 "speed_vs_default": base / summary["median_ms"]})
        finally:
            for worker in workers:
                worker.close()
    return rows


COLD_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
for name in ("torch", "transformers", "optimum", "onnxpipe_export"):
    sys.modules[name] = None
import numpy, onnxruntime, tokenizers
t1 = time.perf_counter()
from onnxpipe import pipeline
from onnxpipe.model_folder import ModelFolder
from onnxpipe.session import OnnxSession
from onnxpipe.text.tokenizer import TextEncoder
t2 = time.perf_counter()
folder = ModelFolder.open(sys.argv[1])
path = folder.onnx_file(sys.argv[2])
t3 = time.perf_counter()
session = OnnxSession(path)
t4 = time.perf_counter()
encoder = TextEncoder(folder)
t5 = time.perf_counter()
pipe = pipeline(folder.task, model=sys.argv[1], dtype=sys.argv[2])
t6 = time.perf_counter()
pipe(sys.argv[3])
t7 = time.perf_counter()
print(json.dumps({"import onnxruntime, tokenizers, numpy": t1 - t0, "import onnxpipe": t2 - t1,
                  "open folder + sha256 check": t3 - t2, "create session": t4 - t3, "load tokenizer": t5 - t4,
                  "whole pipeline() again (warm file cache)": t6 - t5, "first call": t7 - t6}))
"""


def cold_breakdown(model: Path, dtype: str, text: str, repeat: int = 3) -> dict[str, float]:
    """Median seconds of each cold-start step, each sample in a fresh process with torch blocked."""
    samples = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", COLD_SCRIPT, str(model), dtype, text], capture_output=True, text=True, check=True)
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {step: statistics.median(s[step] for s in samples) for step in samples[0]}


def call_breakdown(model: Path, dtype: str, texts: list[str], repeat: int) -> dict[str, float]:
    """Median microseconds per step of one pipeline call on `texts` (as one batch), and of the whole call."""
    pipe = pipeline(None, model=str(model), dtype=dtype)
    options = pipe.check_options({"batch_size": len(texts)}, pipe.defaults)
    check = getattr(pipe, "check_item", None)  # the task's own input normalization, where the runtime has one
    items = [check(t) for t in texts] if check else [(t, None) for t in texts] if pipe.task == "text-classification" else list(texts)
    pieces = pipe.prepare(items, options)
    encoded = pipe.collate(pieces, options)
    feeds = pipe.feeds(encoded)
    outputs = pipe.session.run(feeds)
    raw = pipe.session.session
    steps = {
        "tokenize": lambda: pipe.prepare(items, options),
        "pad (collate)": lambda: pipe.collate(pieces, options),
        "session.run with feed checks": lambda: pipe.session.run(feeds),
        "InferenceSession.run alone": lambda: raw.run(pipe.session.output_names, feeds),
        "post-process": lambda: [pipe.postprocess(outputs, encoded, row, options) for row in range(len(texts))],
        "whole call": lambda: pipe(texts if len(texts) > 1 else texts[0], batch_size=len(texts)),
    }
    for fn in steps.values():
        fn()
    return {name: 1000 * _median_ms(fn, repeat) for name, fn in steps.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure the three groups of levers on one exported model and print markdown tables."""
    parser = argparse.ArgumentParser(prog="python -m onnxpipe_bench.levers", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="onnxpipe model folder")
    parser.add_argument("--dtype", default="int8")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=lambda t: [int(x) for x in t.split(",")], default=[1], help="comma-separated batch sizes")
    parser.add_argument("--rounds", type=int, default=20, help="alternating rounds of timed calls")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    texts = make_texts(args.model, max(args.batch_size), args.seq_len)
    text = texts[0]
    pipe = pipeline(None, model=str(args.model), dtype=args.dtype)
    task, path = pipe.task, pipe.model_path
    del pipe
    figures: dict[str, Any] = {"model": str(args.model), "file": path.name, "seq_len": args.seq_len}
    figures["sessions"] = measure_sessions(args.model, task, args.dtype, path, texts, args.batch_size, args.rounds)
    figures["cold_start_s"] = cold_breakdown(args.model, args.dtype, text)
    figures["call_us"] = {f"1 x {n}": call_breakdown(args.model, args.dtype, [t], args.rounds * 5)
                          for n, t in ((16, make_texts(args.model, 1, 16)[0]), (args.seq_len, text))}
    print(f"### Levers on {path.name}, batch 1 x {args.seq_len} tokens\n")
    print("\n".join(markdown_table(["session variant", "batch", "create ms", "pipeline ms", "session.run ms", "speed vs default"], [
        [s["variant"], str(s["batch_size"]), f"{s['create_ms']:.0f}", f"{s['median_ms']:.2f}", f"{s['core_median_ms']:.2f}",
         f"{s['speed_vs_default']:.2f}x"] for s in figures["sessions"]])))
    print("\nCold start of a fresh onnxpipe process, median seconds per step:\n")
    print("\n".join(markdown_table(["step", "s"], [[k, f"{v:.3f}"] for k, v in figures["cold_start_s"].items()])))
    print("\nOne pipeline call, median microseconds per step:\n")
    configs = list(figures["call_us"])
    steps = list(figures["call_us"][configs[0]])
    print("\n".join(markdown_table(["step"] + configs, [[s] + [f"{figures['call_us'][c][s]:.0f}" for c in configs] for s in steps])))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
