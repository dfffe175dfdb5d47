"""`onnxpipe embed --model DIR INPUT --output OUT`: the arguments and the run (exit 130 after Ctrl-C, resumable)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from onnxpipe.corpus.embed import POOLING_CHOICES, EmbedOptions
from onnxpipe.corpus.job import DEFAULT_CHUNK_SIZE, embed_file
from onnxpipe.corpus.resume import sidecar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `embed` subcommand's arguments."""
    parser.add_argument("input", help="a .jsonl (one JSON object a line), .csv (with a header) or .parquet file")
    parser.add_argument("--model", required=True, help="exported model folder or hub id")
    parser.add_argument("--output", "-o", required=True,
                        help="OUT.parquet (columns id, embedding) or OUT.npy (vectors only, in row order)")
    parser.add_argument("--text-column", default="text", help="the column of texts (default: text)")
    parser.add_argument("--id-column", help="the column of ids (ints or strings) for a Parquet output (default: the row number, from 0)")
    parser.add_argument("--pooling", default="auto", choices=POOLING_CHOICES,
                        help="auto (default): the folder's sentence-transformers embedding (folder) when it has "
                             "modules.json, else mean pooling")
    parser.add_argument("--normalize", action="store_true", help="L2-normalize each vector (after the folder's own steps)")
    parser.add_argument("--prompt-name", help="one of the folder's prompts (config_sentence_transformers.json), e.g. passage")
    parser.add_argument("--prompt", help="a prompt text put before every text, e.g. 'passage: '")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per model call (default: 32)")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                        help=f"texts sorted, embedded and written together; the unit of memory and resume (default: {DEFAULT_CHUNK_SIZE})")
    parser.add_argument("--dtype", help="ONNX variant: fp32, int8, fp16 (default: the folder's default)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: all cores)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--restart", action="store_true", help="discard an unfinished run (OUT.partial/) and start over")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress line")


def run(args: argparse.Namespace) -> int:
    """Run `onnxpipe embed`; errors are OnnxpipeErrors (printed by the CLI, exit 1)."""
    options = EmbedOptions(pooling=args.pooling, normalize=args.normalize, prompt_name=args.prompt_name,
                           prompt=args.prompt, batch_size=args.batch_size)
    try:
        with warnings.catch_warnings():  # the run's truncation count is printed below, without a source line
            warnings.filterwarnings("ignore", message=r"[\d,]+ of [\d,]+ texts were longer than")
            result = embed_file(args.model, args.input, args.output, text_column=args.text_column,
                                id_column=args.id_column, options=options, dtype=args.dtype, device=args.device,
                                threads=args.threads, chunk_size=args.chunk_size, overwrite=args.overwrite,
                                restart=args.restart, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the finished chunks are in {sidecar(Path(args.output))}; run the same command again to "
              "continue where it stopped.", file=sys.stderr)
        return 130
    if result.truncated:
        print(f"note: {result.truncated:,} of {result.embedded:,} texts were longer than the model takes and were cut "
              "to fit (as sentence-transformers does)", file=sys.stderr)
    if not args.quiet:
        print(f"{result.rows:,} vectors of {result.dim} ({result.pooling} pooling) in {result.output}; "
              f"{result.embedded:,} embedded by this run", file=sys.stderr)
    return 0

