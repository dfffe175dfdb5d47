"""The export command line: argument parsing and exit codes (0 ok, 1 failed export, 2 usage error)."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Optional, Sequence

from onnxpipe.errors import InvalidOptionError, OnnxpipeError, UnknownTaskError
from onnxpipe.registry import normalize_task

from .api import export
from .dtypes import GENERATION_DTYPES, WRITABLE_DTYPES, parse_dtypes
from .errors import ExportQualityWarning
from .tasks import EXPORT_TASKS
from .weight_only_recipes import BLOCK_SIZES, DEFAULT_BLOCK_SIZE, DEFAULT_Q4_METHOD, Q4_METHODS

USAGE_ERRORS = (UnknownTaskError, InvalidOptionError)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of `python -m onnxpipe_export` / `onnxpipe export`."""
    parser = argparse.ArgumentParser(
        prog="onnxpipe export",
        description="Export a Hugging Face checkpoint to an optimized, validated ONNX folder for onnxpipe.",
    )
    parser.add_argument("model", help="hub id (e.g. distilbert-base-uncased) or local checkpoint folder")
    parser.add_argument("--task", required=True, help="pipeline task, e.g. text-classification, feature-extraction")
    parser.add_argument("--output", "-o", required=True, help="folder to write (new, empty, or a previous export)")
    parser.add_argument(
        "--dtype",
        action="append",
        metavar="DTYPE",
        help=f"variant to write, repeatable or comma-separated: {', '.join(WRITABLE_DTYPES)}, and q4 for generation "
        "tasks (default fp32; the first "
        "is the folder's default variant; model.onnx in fp32 is always written)",
    )
    parser.add_argument(
        "--q4-method", choices=tuple(Q4_METHODS), help=f"how the q4 file's 4-bit weights are chosen (generation tasks; "
        f"default {DEFAULT_Q4_METHOD}): rtn-mixed rtn with the LM head, value and MLP down projections, first/last layers "
        "at 8 bits, rtn symmetric round-to-nearest, rtn-asym with zero points, kquant, hqq, gptq (calibrated)",
    )
    parser.add_argument(
        "--block-size", type=int, metavar="N", help=f"weights per quantization block of the q4 and generation int8 "
        f"files: {', '.join(map(str, BLOCK_SIZES))} (default {DEFAULT_BLOCK_SIZE})",
    )
    parser.add_argument(
        "--calibration", metavar="FILE|builtin", help="text that calibrates --q4-method gptq: a UTF-8 text file, or "
        "builtin (the default) for a short English text; other methods refuse it",
    )
    parser.add_argument("--revision", help="hub branch, tag or commit (hub ids only)")
    parser.add_argument("--vocoder", help="text-to-audio with SpeechT5: the SpeechT5HifiGan vocoder, hub id or folder "
                        "(default microsoft/speecht5_hifigan, as transformers' pipeline)")
    parser.add_argument("--no-optimize", dest="optimize", action="store_false", help="skip graph fusion")
    parser.add_argument("--no-validate", dest="validate", action="store_false", help="skip the comparison with torch")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress display and no summary")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the export command line and return its exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on a usage error, 0 on --help
        return int(exc.code or 0)
    try:
        recipe = EXPORT_TASKS.get(normalize_task(args.task))
        # generation tasks also write q4, and so does speech recognition (Whisper; CTC refuses it on export)
        generation = recipe is not None and (recipe.kind == "generation" or recipe.task == "automatic-speech-recognition")
        dtypes = parse_dtypes(
            [d for value in args.dtype or ["fp32"] for d in value.split(",") if d.strip()],
            allowed=GENERATION_DTYPES if generation else WRITABLE_DTYPES,
        )
    except USAGE_ERRORS as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ExportQualityWarning)
            export(
                args.model,
                args.task,
                args.output,
                dtypes,
                optimize=args.optimize,
                revision=args.revision,
                quiet=args.quiet,
                validate=args.validate,
                q4_method=args.q4_method,
                block_size=args.block_size,
                calibration=args.calibration,
                vocoder=args.vocoder,
            )
    except USAGE_ERRORS as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except OnnxpipeError as exc:
        print(f"{parser.prog}: export failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    for warning in caught:
        if not issubclass(warning.category, ExportQualityWarning):
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        elif args.quiet:  # otherwise the summary already listed it
            print(f"{parser.prog}: warning: {warning.message}", file=sys.stderr)
    return 0
