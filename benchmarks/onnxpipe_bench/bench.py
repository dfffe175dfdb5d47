"""The benchmark run: resolve the model and engines, time cold starts in fresh processes, then time every
(batch size, sequence length) on all engines at once, alternating engines call by call, and assemble the record.
"""

from __future__ import annotations

import importlib.util
import os
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from onnxpipe.model_folder import ModelFolder, normalize_dtype
from onnxpipe.registry import normalize_task
from onnxpipe.session import parse_device

from . import footprint, stats
from .clips import make_clips
from .engine_spec import EngineSpec
from .generation_bench import decoder_stem, describe_files, generation_fields, generation_notes, optimum_skip_reason
from .machine import machine_info
from .process import Worker, WorkerError, start_worker
from .task_inputs import build_inputs, max_tokens
from .tasks import (
    AUDIO_RATE,
    AUDIO_SECONDS,
    GENERATION_PROMPT,
    QUESTION,
    VQA_QUESTION,
    TaskSpec,
    pipeline_task,
    task_spec,
)

COMPARE = ("torch", "optimum")
DTYPE_ORDER = ("int8", "uint8", "fp32", "fp16", "q4", "q4f16", "bnb4")
COLD_NEW_TOKENS = 8  # generation tasks: new tokens of the cold start's first call


@dataclass
class BenchOptions:
    """Everything a run needs; the command line fills it."""

    model: str
    task: Optional[str] = None
    dtypes: Optional[list[str]] = None  # None: every variant the folder holds
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32])
    seq_lens: list[int] = field(default_factory=lambda: [16, 128, 512])
    device: str = "cpu"
    compare: list[str] = field(default_factory=lambda: list(COMPARE))
    checkpoint: Optional[str] = None  # the torch checkpoint; default: the manifest's source.model
    runs: int = 10  # timed calls per engine and configuration (at most)
    warmup: int = 2  # untimed calls per engine and configuration
    cold_runs: int = 3  # fresh processes per engine for cold start
    time_limit: float = 120.0  # seconds per configuration, after which rounds stop (at least 3 are kept)
    threads: Optional[int] = None  # intra-op threads for every engine; None: each engine's default
    # audio tasks: --seq-len was given and means clip seconds; generation tasks: it was given (else prompt 32 tokens)
    audio_seconds_given: bool = False
    new_tokens: Optional[int] = None  # generation tasks: forced new tokens per sequence; None: the task's default
    # seconds between two engines' calls: onnxruntime's and OpenMP's threads keep spinning for some 10-20 ms after
    # a call, which would slow whichever engine runs next
    pause: float = 0.05


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load_average() -> Optional[list[float]]:
    """The 1, 5 and 15-minute load averages: other work on the machine skews every engine's times."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def resolve_model(options: BenchOptions) -> tuple[Any, str, dict[str, Path]]:
    """(model folder, canonical task, dtype -> ONNX file) for the options; files are checked against the manifest."""
    folder = ModelFolder.open(options.model)
    task = normalize_task(options.task) if options.task else folder.task
    if task is None:
        raise SystemExit(f"error: cannot tell the task of {options.model}; pass --task")
    stem = decoder_stem(folder)  # "model", or the decoder of an encoder-decoder export
    present = folder.variants(stem)
    wanted = [normalize_dtype(d) for d in options.dtypes] if options.dtypes else sorted(
        present, key=lambda d: DTYPE_ORDER.index(d) if d in DTYPE_ORDER else len(DTYPE_ORDER)
    )
    kind, _ = parse_device(options.device)
    return folder, task, {dtype: folder.onnx_file(dtype, kind, stem) for dtype in wanted}


def checkpoint_of(folder: Any, options: BenchOptions) -> tuple[Optional[str], Optional[str]]:
    """(the torch checkpoint to compare with, None) or (None, why there is none)."""
    if options.checkpoint:
        return options.checkpoint, None
    source = ((folder.manifest or {}).get("source") or {}).get("model")
    if not source:
        return None, "the folder's manifest names no source checkpoint; pass --checkpoint"
    if source.startswith("/") and not Path(source).is_dir():
        return None, f"the source checkpoint {source} no longer exists; pass --checkpoint"
    return source, None


def engine_specs(options: BenchOptions, folder: Any, task: str, files: dict[str, Path]) -> tuple[list[EngineSpec], list[dict[str, str]]]:
    """The engines to run and the ones skipped, each with its reason."""
    common = {"task": pipeline_task(task, options.task), "device": options.device, "threads": options.threads}
    kind, _ = parse_device(options.device)
    specs = [EngineSpec("onnxpipe", model=str(folder.path), dtype=d, **common) for d in files]
    skipped = []
    unknown = sorted(set(options.compare) - set(COMPARE))
    if unknown:
        raise SystemExit(f"error: --compare takes {', '.join(COMPARE)}; got {', '.join(unknown)}")
    if "torch" in options.compare:
        checkpoint, why = checkpoint_of(folder, options)
        if not (_installed("torch") and _installed("transformers")):
            skipped.append({"engine": stats.BASELINE, "reason": "torch and transformers are not installed"})
        elif checkpoint is None:
            skipped.append({"engine": stats.BASELINE, "reason": why or "no checkpoint"})
        else:
            specs.append(EngineSpec("transformers", model=checkpoint, **common))
    if "optimum" in options.compare:
        if task_spec(task, folder.config).optimum_class is None:
            why = task_spec(task, folder.config).optimum_note or f"Optimum has no ORTModel class for {task}"
            skipped.append({"engine": "optimum", "reason": why})
        elif not (_installed("optimum") and _installed("optimum.onnxruntime") and _installed("transformers")):
            skipped.append({"engine": "optimum", "reason": "optimum-onnx (optimum.onnxruntime) is not installed"})
        else:
            for dtype in files:
                why = optimum_skip_reason(folder, dtype, kind)
                if why:
                    skipped.append({"engine": f"optimum {dtype}", "reason": why})
                    continue
                specs.append(EngineSpec("optimum", model=str(folder.path), dtype=dtype, file=describe_files(folder, dtype, kind), **common))
    return specs, skipped


def _rotated(items: list, shift: int) -> list:
    shift %= max(len(items), 1)
    return items[shift:] + items[:shift]


def start_engines(specs: list[EngineSpec], first: list[Any], options: dict[str, Any], rounds: int, audio: bool = False) -> tuple[list[Worker], dict[str, list[dict[str, float]]], dict[str, str]]:
    """Start every engine `rounds` times in fresh processes, rotating the order; keep the last round's workers.

    Returns (running workers in spec order, per engine the cold-start samples, per failed engine the reason).
    """
    samples: dict[str, list[dict[str, float]]] = {s.name: [] for s in specs}
    failures: dict[str, str] = {}
    kept: dict[str, Worker] = {}
    for r in range(rounds):
        for spec in _rotated(specs, r):
            if spec.name in failures:
                continue
            worker, why = start_worker(spec, first, options, audio)
            if worker is None:
                failures[spec.name] = why or "failed"
                continue
            samples[spec.name].append({"cold_start_s": worker.cold_start_s, "load_s": worker.ready["load_s"], "rss_mb": worker.ready["rss_mb"]})
            if r == rounds - 1:
                kept[spec.name] = worker
            else:
                worker.close()
    return [kept[s.name] for s in specs if s.name in kept], samples, failures


def time_configuration(workers: list[Worker], key: str, options: BenchOptions,
                       steps: Optional[dict[str, list[int]]] = None) -> tuple[dict[str, tuple[list[float], list[float]]], dict[str, str]]:
    """Warm up every engine, then time one call per engine per round, in a new (seeded) random order each round,
    so that every engine follows every other one about equally often.

    Returns (per engine the (total, core) seconds of each timed call, per engine that failed its reason); a failed
    engine leaves the rotation and keeps no timings for this configuration. `steps`, when given, receives per
    engine the decoder steps of each timed call (generation engines report them).
    """
    failed: dict[str, str] = {}

    def request(worker: Worker, message: dict[str, Any]) -> Optional[dict[str, Any]]:
        if worker.spec.name in failed:
            return None
        try:
            return worker.request(message)
        except WorkerError as exc:
            failed[worker.spec.name] = str(exc)
            return None

    for worker in workers:
        if options.warmup:
            request(worker, {"op": "time", "key": key, "calls": options.warmup})
    times: dict[str, tuple[list[float], list[float]]] = {w.spec.name: ([], []) for w in workers}
    shuffler = random.Random(key)
    started = time.perf_counter()
    for r in range(options.runs):
        if r >= min(3, options.runs) and time.perf_counter() - started > options.time_limit:
            break
        order = list(workers)
        shuffler.shuffle(order)
        for worker in order:
            answer = request(worker, {"op": "time", "key": key, "calls": 1})
            if answer is not None:
                times[worker.spec.name][0].extend(answer["total"])
                times[worker.spec.name][1].extend(answer["core"])
                if steps is not None and "steps" in answer:
                    steps.setdefault(worker.spec.name, []).extend(answer["steps"])
                time.sleep(options.pause)
    return {name: t for name, t in times.items() if name not in failed}, failed


def sizes_and_notes(options: BenchOptions, folder: Any, task: str, spec: TaskSpec) -> tuple[list[Any], list[str]]:
    """The input sizes to time (tokens, a picture size, or clip lengths) and the record's notes on them; SystemExit
    when every asked token count exceeds the model's limit."""
    if spec.modality == "image":  # one input size: a camera frame, which each processor resizes its own way
        seq_lens: list[Any] = ["x".join(map(str, spec.picture))]
        notes = [f"inputs are {seq_lens[0]} (height x width) pictures decoded before timing; --seq-len does not apply"]
        if spec.task == "visual-question-answering":
            notes.append(f"every picture comes with the question {VQA_QUESTION!r}")
        if spec.note:  # image-to-text: what the forced lengths mean, with the call options
            notes += spec.call_notes()
        elif spec.call_options:
            notes.append(f"every engine's call options: {spec.call_options!r}")
        return seq_lens, notes
    if spec.modality == "audio":  # clip lengths in seconds: --seq-len gives them when set, else AUDIO_SECONDS
        lengths = options.seq_lens if options.audio_seconds_given else list(AUDIO_SECONDS)
        seq_lens = [f"{s}s" for s in lengths]
        notes = [f"inputs are speech-like clips of {', '.join(seq_lens)} at {AUDIO_RATE} Hz, decoded before timing; "
                 "real-time factor = median seconds per clip / clip seconds"]
        if spec.long_clip_options:
            notes.append(f"clips over 30 s are called with {spec.long_clip_options} on every engine")
        return seq_lens, notes + spec.call_notes()
    limit = max_tokens(folder)
    asked = options.seq_lens
    if spec.modality == "generation" and not options.audio_seconds_given:
        asked = [GENERATION_PROMPT]
    seq_lens = [s for s in asked if limit is None or s <= limit]
    notes = [f"seq-len {s} skipped: the model takes at most {limit} tokens" for s in asked if s not in seq_lens]
    if spec.modality == "generation":
        notes += generation_notes(spec, options.audio_seconds_given)
    if spec.modality == "speech-text":
        notes += spec.call_notes()
    if spec.modality == "document":
        notes.append(f"every input is {{image, question, word_boxes}}: a {'x'.join(map(str, spec.picture))} picture "
                     f"decoded before timing, the question {QUESTION!r} and the words of a seq-len-token text with "
                     "their boxes (given, so no engine runs OCR); tokens = question + words + special tokens")
    if task == "translation":
        notes.append(f"every engine's pipeline is built as pipeline({pipeline_task(task, options.task)!r}, ...)")
    if not seq_lens:
        raise SystemExit(f"error: every --seq-len exceeds the model's limit of {limit} tokens")
    return seq_lens, notes


def time_grid(workers: list[Worker], spec: TaskSpec, seq_lens: list[Any],
              inputs: dict[Any, tuple[list[Any], Optional[float]]], options: BenchOptions,
              log: Callable[[str], None]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Time every (input size, batch size) on the running workers. Returns the result rows and the engines that
    failed on a configuration (each then leaves the run: it is closed and removed from `workers`)."""
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for seq_len in seq_lens:
        texts, tokens = inputs[seq_len]
        for batch in options.batch_sizes:
            key = f"{batch}x{seq_len}"
            batch_options = {**spec.options_for(seq_len), "batch_size": batch}
            for worker in workers:
                worker.request({"op": "inputs", "key": key, "inputs": texts[:batch], "options": batch_options,
                                "images": spec.modality in ("image", "document"), "audio": spec.modality == "audio"})
            log(f"timing batch {batch} x {seq_len} tokens on {len(workers)} engines")
            steps: dict[str, list[int]] = {}
            times, failed = time_configuration(workers, key, options, steps)
            for name, (total, core) in times.items():
                row = {"batch_size": batch, "seq_len": seq_len, "tokens_per_input": tokens, "engine": name,
                       **stats.summarize(total, core, batch)}
                if spec.generates:
                    row.update(generation_fields(row, steps.get(name, []), spec.new_tokens, batch))
                results.append(row)
            for name, why in failed.items():  # an engine that fails on one configuration leaves the run
                skipped.append({"engine": name, "reason": f"failed on batch {batch} x {seq_len}: {why}"})
                dead = next(w for w in workers if w.spec.name == name)
                dead.close()
                workers.remove(dead)
    return results, skipped


def engine_entries(specs: list[EngineSpec], cold: dict[str, list[dict[str, float]]], finals: dict[str, dict[str, Any]],
                   folder: Any, device: str) -> list[dict[str, Any]]:
    """The record's `engines`: per engine that lasted the run, its files, cold start, memory and footprint."""
    engines = []
    for s in specs:
        if s.name not in finals:
            continue
        samples = cold[s.name]
        fp = footprint.engine_footprint(s.kind)
        engines.append({
            **{k: v for k, v in asdict(s).items() if k in ("kind", "dtype", "file", "model")},
            "name": s.name,
            "file": s.file or (describe_files(folder, s.dtype, parse_device(device)[0]) if s.kind == "onnxpipe" else None),
            "cold_start_s": statistics.median(x["cold_start_s"] for x in samples),
            "cold_start_samples_s": [x["cold_start_s"] for x in samples],
            "load_s": statistics.median(x["load_s"] for x in samples),
            "rss_at_first_result_mb": statistics.median(x["rss_mb"] for x in samples),
            "peak_rss_mb": finals[s.name]["peak_rss_mb"],
            "heavy_modules_imported": finals[s.name]["heavy_modules"],
            "footprint_mb": fp.size_mb if fp else None,
            "footprint_roots": list(fp.roots) if fp else None,
            "footprint_missing": fp.missing if fp else None,
        })
    return engines


def run_bench(options: BenchOptions, log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Run the whole benchmark and return its JSON-ready record."""
    load_at_start = _load_average()
    folder, task, files = resolve_model(options)
    spec = task_spec(task, folder.config).with_new_tokens(options.new_tokens)
    specs, skipped = engine_specs(options, folder, task, files)
    seq_lens, notes = sizes_and_notes(options, folder, task, spec)
    inputs = {s: build_inputs(folder, spec, s, max(options.batch_sizes)) for s in seq_lens}
    call_options = spec.options_for(seq_lens[0])
    if spec.generates:  # the cold start's first result: a short generation, not 128 tokens
        cold = spec.with_new_tokens(min(COLD_NEW_TOKENS, spec.new_tokens))
        call_options = cold.options_for(seq_lens[0])
        notes.append(f"cold start: first result of a {cold.new_tokens}-new-token generation")

    log(f"cold start: {options.cold_runs} fresh process(es) per engine, {len(specs)} engines")
    first = inputs[seq_lens[0]][0][:1]
    if spec.modality == "audio":  # a 1-second clip: the cold start should not include transcribing 30 seconds
        first = make_clips(1, 1.0, AUDIO_RATE, seed=7)
    workers, cold_samples, failures = start_engines(specs, first, {**call_options, "batch_size": 1}, options.cold_runs,
                                                    audio=spec.modality == "audio")
    skipped += [{"engine": name, "reason": why} for name, why in failures.items()]
    try:
        results, failed = time_grid(workers, spec, seq_lens, inputs, options, log)
        skipped += failed
        finals = {w.spec.name: w.request({"op": "stats"}) for w in workers}
    finally:
        for worker in workers:
            worker.close()

    engines = engine_entries(specs, cold_samples, finals, folder, options.device)
    return {
        "schema": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "load_average": {"start": load_at_start, "end": _load_average()}},
        "task": task,
        "model": str(folder.path),
        "device": options.device,
        "settings": {k: v for k, v in asdict(options).items() if k not in ("model", "task")},
        "engines": engines,
        "skipped": skipped,
        "results": results,
        "ratios": {
            "baseline": stats.BASELINE,
            "latency": stats.latency_ratios(results),
            "engines": stats.engine_ratios(engines),
        },
        "notes": notes,
    }
