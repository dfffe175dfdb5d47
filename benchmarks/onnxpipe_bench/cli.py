"""`python -m onnxpipe_bench` (and `onnxpipe bench`): parse the options, run, write JSON / markdown / PNG."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from .bench import COMPARE, BenchOptions, run_bench
from .plot import plot
from .report import markdown


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip() and v.strip() != "none"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `onnxpipe bench`."""
    parser = argparse.ArgumentParser(
        prog="onnxpipe bench",
        description="Time onnxpipe against the transformers torch pipeline and Optimum's ORTModel pipeline on the same inputs.",
    )
    parser.add_argument("--model", required=True, help="onnxpipe model folder (or hub id)")
    parser.add_argument("--task", help="pipeline task (default: the folder's)")
    parser.add_argument("--dtype", action="append", help="ONNX variant(s) to run, repeatable or comma-separated (default: all present)")
    parser.add_argument("--batch-size", type=_ints, default=[1, 8, 32], help="comma-separated batch sizes (default 1,8,32)")
    parser.add_argument("--seq-len", type=_ints, default=None,
                        help="comma-separated tokens per input (default 16,128,512; generation tasks: prompt tokens, default 32); "
                        "for audio tasks, seconds per clip (default 30,300); text-to-audio: characters per text; "
                        "document-question-answering: question + words, in tokens")
    parser.add_argument("--new-tokens", type=int, help="generation tasks and Whisper: new tokens every call "
                        "generates (min = max; default 128 for text-generation, 64 for summarization / "
                        "text2text-generation and Whisper)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (passed to every engine)")
    parser.add_argument("--compare", type=_names, default=list(COMPARE), help="engines to compare with: torch,optimum (or none)")
    parser.add_argument("--checkpoint", help="torch checkpoint for the transformers engine (default: the manifest's source.model)")
    parser.add_argument("--runs", type=int, default=10, help="timed calls per engine and configuration (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per engine and configuration (default 2)")
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh processes per engine for cold start and RSS (default 3)")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per configuration before rounds stop (default 120)")
    parser.add_argument("--threads", type=int, help="intra-op threads for every engine (default: each engine's own)")
    parser.add_argument("--json", type=Path, help="write the full record (machine, samples, ratios) here")
    parser.add_argument("--markdown", type=Path, help="write the markdown report here")
    parser.add_argument("--plot", type=Path, help="write a PNG chart here (needs the bench extra: matplotlib)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines and no report on stdout")
    return parser


def options_from(args: argparse.Namespace) -> BenchOptions:
    """BenchOptions from parsed arguments."""
    dtypes = [d.strip() for item in args.dtype for d in item.split(",") if d.strip()] if args.dtype else None
    if args.runs < 1 or args.cold_runs < 1 or args.warmup < 0:
        raise SystemExit("error: --runs and --cold-runs must be >= 1, --warmup >= 0")
    return BenchOptions(
        model=args.model, task=args.task, dtypes=dtypes, batch_sizes=args.batch_size,
        seq_lens=args.seq_len or [16, 128, 512], audio_seconds_given=args.seq_len is not None,
        new_tokens=args.new_tokens, device=args.device, compare=args.compare, checkpoint=args.checkpoint, runs=args.runs, warmup=args.warmup,
        cold_runs=args.cold_runs, time_limit=args.time_limit, threads=args.threads,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark and write what was asked for; the markdown report goes to stdout too."""
    args = build_parser().parse_args(argv)
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401  (fail before the run, not after it)
        except ImportError:
            print("error: --plot needs matplotlib. Install it with: pip install 'onnxpipe[bench]'", file=sys.stderr)
            return 1
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    record = run_bench(options_from(args), log)
    report = markdown(record)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report, encoding="utf-8")
    if args.plot:
        plot([record], args.plot)
    if not args.quiet:
        print(report)
    return 0
