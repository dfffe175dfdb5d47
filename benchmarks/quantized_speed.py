"""Greedy speed of several SmolLM2 weight-only files, interleaved: all loaded in one process and run round robin,
so the machine's load hits every file alike (one run per file, as quantized_quality.py --speed does, moved by 10%).

    .venv/bin/python benchmarks/quantized_speed.py "fp32,q4 rtn b32,q4 rtn-mixed b32 (default)" [ROUNDS]

Names are quantized_quality.RECIPES keys (and fp32); the fp32 export of `benchmarks/quantized_quality.py` is reused
(run it once first), each recipe's file is written once under out/real/quantized_speed/. Prints tokens/s per round
and the median and best per file as JSON (greedy, batch 1, 64 new tokens forced).
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnxpipe  # noqa: E402
from benchmarks.quantized_quality import NEW_TOKENS, PROMPT, RECIPES  # noqa: E402
from benchmarks.real_weights import DEFAULT_WORK  # noqa: E402
from onnxpipe_export.weight_only import quantize_weight_only  # noqa: E402

base = DEFAULT_WORK / "quantized_quality" / "smollm2-fp32"
work = DEFAULT_WORK / "quantized_speed"
if not (base / "model.onnx").is_file():
    sys.exit(f"{base} has no model.onnx: run benchmarks/quantized_quality.py --speed none --recipes 'q4 rtn b32' first")
names = sys.argv[1].split(",")
unknown = [n for n in names if n != "fp32" and n not in RECIPES]
if unknown:
    sys.exit(f"unknown recipes {unknown}; known: fp32, {', '.join(RECIPES)}")
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
pipes = {}
for name in names:
    if name == "fp32":
        pipes[name] = onnxpipe.pipeline("text-generation", model=str(base), dtype="fp32")
        continue
    recipe = RECIPES[name]
    folder = work / name.replace(" ", "_").replace("(", "").replace(")", "")
    folder.mkdir(parents=True, exist_ok=True)
    for f in base.iterdir():
        if f.name.startswith("model_"):
            continue
        link = folder / f.name
        if not link.exists():
            link.symlink_to(f)
    suffix = "q4" if recipe.bits == 4 else "quantized"
    target = folder / f"model_{suffix}.onnx"
    if not target.exists():
        quantize_weight_only(base / "model.onnx", target, recipe, None)
    pipes[name] = onnxpipe.pipeline("text-generation", model=str(folder), dtype="q4" if recipe.bits == 4 else "int8")
for p in pipes.values():
    p(PROMPT, max_new_tokens=8, do_sample=False)
times = {n: [] for n in names}
for r in range(rounds):
    for n, p in pipes.items():
        start = time.perf_counter()
        p(PROMPT, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
        times[n].append(NEW_TOKENS / (time.perf_counter() - start))
    print(r, {n: round(v[-1], 1) for n, v in times.items()}, "load", os.getloadavg()[0], flush=True)
print(json.dumps({n: {"median": statistics.median(v), "best": max(v), "all": v} for n, v in times.items()}, indent=1))
