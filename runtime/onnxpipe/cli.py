"""The `onnxpipe` command: `tasks`, `run`, `export` and `bench`.

`export` runs the export stage in a separate `python -m onnxpipe_export` process and `bench` the benchmark
harness in a `python -m onnxpipe_bench` process, so the runtime never imports torch, transformers or either package.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from typing import Any, Optional, Sequence

import numpy as np

from onnxpipe import __version__
from onnxpipe.audio.wav_write import channels_last, wav_bytes
from onnxpipe.check import run_check
from onnxpipe.corpus import command as embed_command
from onnxpipe.cpu import this_cpu
from onnxpipe.errors import ExportDependencyError, OnnxpipeError
from onnxpipe.pipelines import pipeline
from onnxpipe.registry import ALIASES, TASKS
from onnxpipe.serving import command as serve_command  # argparse only: the app's dependencies load in `serve`

EXPORT_MODULES = ("torch", "transformers", "optimum.exporters.onnx", "onnx")
EXPORT_INSTALL = "pip install 'onnxpipe[export]'"
BENCH_MODULES = ("onnxpipe_bench", "matplotlib")
BENCH_INSTALL = "pip install 'onnxpipe[bench]'"


def _missing_modules(modules: Sequence[str]) -> list[str]:
    """The modules of `modules` that are not installed (found without importing them)."""
    missing = []
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):  # a parent package is missing
            missing.append(name)
    return missing


def missing_export_modules() -> list[str]:
    """The modules the export stage needs that are not installed (found without importing them)."""
    return _missing_modules(EXPORT_MODULES)


def missing_bench_modules() -> list[str]:
    """The modules the benchmark harness needs that are not installed (found without importing them)."""
    return _missing_modules(BENCH_MODULES)


def _parse_value(text: str) -> Any:
    """An option value from the command line: JSON when it parses (1, true, null, [..]), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def cmd_tasks(args: argparse.Namespace) -> int:
    """Print the tasks onnxpipe runs and their aliases."""
    for task in sorted(TASKS):
        aliases = sorted(a for a, t in ALIASES.items() if t == task)
        print(task + (f"  (aliases: {', '.join(aliases)})" if aliases else ""))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print what this machine gives onnxpipe: versions, execution providers, CPU class and the int8 settings."""
    import onnxruntime as ort

    print(f"onnxpipe {__version__}, onnxruntime {ort.__version__}, providers: {', '.join(ort.get_available_providers())}")
    print(f"CPU class: {this_cpu().describe()}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Measure every file of an export folder on its stored references, on this CPU; 1 when one misses its bound."""
    return run_check(args.folder, as_json=args.json)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a pipeline on texts from the command line (or stdin lines) and print JSON."""
    inputs = list(args.inputs) or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if args.json_input:
        inputs = [json.loads(text) for text in inputs]
    if not inputs:
        raise SystemExit("error: no inputs; pass texts as arguments or one per line on stdin")
    options = {}
    for item in args.option or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --option takes key=value, got {item!r}")
        options[key] = _parse_value(value)
    started = time.perf_counter()
    pipe = pipeline(args.task, model=args.model, device=args.device, dtype=args.dtype)
    if (pipe.task == "text-to-audio") != bool(args.output):
        raise SystemExit("error: text-to-audio writes WAV files: pass --output speech.wav" if not args.output
                         else f"error: --output applies to text-to-audio only, not {pipe.task}")
    loaded = time.perf_counter()
    result = pipe(inputs if len(inputs) > 1 else inputs[0], **options)
    done = time.perf_counter()
    if args.output:
        result = _write_audio(result if isinstance(result, list) else [result], args.output)
    print(json.dumps(_jsonable(result), ensure_ascii=False, indent=None if args.compact else 2))
    if args.timings:
        print(f"load {1000 * (loaded - started):.1f} ms, run {1000 * (done - loaded):.1f} ms ({pipe.model_path.name})", file=sys.stderr)
    return 0


def _write_audio(results: list[dict[str, Any]], output: str) -> list[dict[str, Any]]:
    """Write each text-to-audio result as a float32 WAV file (OUT.wav; OUT-1.wav, OUT-2.wav ... for several)."""
    stem, dot, ext = output.rpartition(".") if "." in output.rsplit("/", 1)[-1] else (output, ".", "wav")
    written = []
    for index, result in enumerate(results, start=1):
        path = output if len(results) == 1 else f"{stem}-{index}{dot}{ext}"
        with open(path, "wb") as handle:
            handle.write(wav_bytes(result["audio"], result["sampling_rate"]))
        seconds = channels_last(result["audio"]).shape[0] / result["sampling_rate"]
        written.append({"file": path, "sampling_rate": result["sampling_rate"], "seconds": round(seconds, 3)})
    return written


def cmd_export(argv: Sequence[str]) -> int:
    """Hand the export arguments to `python -m onnxpipe_export` when the export extra is installed."""
    missing = missing_export_modules()
    if missing:
        raise ExportDependencyError(
            f"`onnxpipe export` needs the export extra ({', '.join(missing)} not installed). Install it with: {EXPORT_INSTALL}"
        )
    return subprocess.call([sys.executable, "-m", "onnxpipe_export", *argv])


def cmd_bench(argv: Sequence[str]) -> int:
    """Hand the bench arguments to `python -m onnxpipe_bench` when the bench extra is installed.

    The harness compares with torch and Optimum only where the export extra is installed; it skips them otherwise.
    """
    missing = missing_bench_modules()
    if missing:
        print(
            f"error: `onnxpipe bench` needs the bench extra ({', '.join(missing)} not installed). Install it with: {BENCH_INSTALL}",
            file=sys.stderr,
        )
        return 1
    return subprocess.call([sys.executable, "-m", "onnxpipe_bench", *argv])


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `onnxpipe` command."""
    parser = argparse.ArgumentParser(prog="onnxpipe", description="Hugging Face pipelines on onnxruntime, without torch.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tasks", help="list tasks and aliases").set_defaults(func=cmd_tasks)
    sub.add_parser("info", help="versions, execution providers, CPU class and its int8 settings").set_defaults(func=cmd_info)
    check = sub.add_parser("check", help="re-measure an export folder's files against its stored torch references, here")
    check.add_argument("folder", help="a folder written by `onnxpipe export`")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=cmd_check)
    run = sub.add_parser("run", help="run a pipeline and print JSON")
    run.add_argument("task", help="task name or alias, e.g. sentiment-analysis")
    run.add_argument("inputs", nargs="*", help="input texts (default: one per line on stdin)")
    run.add_argument("--model", required=True, help="exported model folder or hub id")
    run.add_argument("--dtype", help="ONNX variant: fp32, int8, fp16 (default: the folder's default)")
    run.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    run.add_argument("--option", "-o", action="append", metavar="KEY=VALUE", help="pipeline option, e.g. -o top_k=2")
    run.add_argument("--json-input", action="store_true", help="parse each input as JSON (for {'text','text_pair'} dicts)")
    run.add_argument("--compact", action="store_true", help="print JSON on one line")
    run.add_argument("--output", metavar="FILE.wav", help="text-to-audio (required there): write the audio as a float32 "
                     "WAV file (several inputs: FILE-1.wav, FILE-2.wav ...) and print the files written")
    run.add_argument("--timings", action="store_true", help="print load and run times on stderr")
    run.set_defaults(func=cmd_run)
    embed = sub.add_parser("embed", help="embed a corpus file (JSONL, CSV, Parquet) into Parquet or .npy, resumably")
    embed_command.add_arguments(embed)
    embed.set_defaults(func=embed_command.run)
    sub.add_parser("export", help="export a checkpoint to an ONNX folder (needs the export extra)", add_help=False)
    sub.add_parser("bench", help="time onnxpipe against transformers and Optimum (needs the bench extra)", add_help=False)
    sub.add_parser("serve", help="serve pipelines over HTTP with dynamic batching, or on Ray Serve (needs the serve extra)", add_help=False)
    parser._run_parser = run  # type: ignore[attr-defined]
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `onnxpipe` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["export"]:
            return cmd_export(argv[1:])
        if argv[:1] == ["bench"]:
            return cmd_bench(argv[1:])
        if argv[:1] == ["serve"]:  # in-process: it needs only the runtime and the serve extra, imported there
            return serve_command.main(argv[1:])
        parser = build_parser()
        args, rest = parser.parse_known_args(argv)
        if args.command == "run":  # texts may come before or after the options
            args = parser._run_parser.parse_intermixed_args(argv[1:])
        elif rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args.func(args)
    except OnnxpipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
