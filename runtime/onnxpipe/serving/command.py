"""`onnxpipe serve`: its arguments, the check that its extra is installed, and the hand-over to the server
(or to Ray Serve with `--ray`). Imports neither starlette, uvicorn nor ray until they are known to be there."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import Optional, Sequence

from onnxpipe.limits import FLAGS as LIMIT_FLAGS
from onnxpipe.limits import Limits
from onnxpipe.serving.config import EMBEDDING_POOLINGS, RayOptions, ServeConfig, limits_from, parse_limit

SERVE_MODULES = ("starlette", "uvicorn")
SERVE_INSTALL = "pip install 'onnxpipe[serve]'"
RAY_MODULES = ("ray", "starlette")
RAY_INSTALL = "pip install 'onnxpipe[ray]'"
API_KEY_ENV = "ONNXPIPE_API_KEY"
# options that only the built-in server has, and only Ray has: given in the other mode they are an error
SERVER_ONLY = ("drain_timeout", "embedding_pooling", "max_client_batch_size", "max_batch_tokens")
RAY_ONLY = ("ray_address", "min_replicas", "max_replicas", "replica_cpus")


def missing(modules: Sequence[str]) -> list[str]:
    """The modules of `modules` that are not installed (found without importing them)."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def build_parser() -> argparse.ArgumentParser:
    """The arguments of `onnxpipe serve`."""
    p = argparse.ArgumentParser(
        prog="onnxpipe serve",
        description="Serve pipelines over HTTP with dynamic batching (Hugging Face Inference API shape, "
        "OpenAI-compatible /v1/embeddings), or deploy them on Ray Serve with --ray.",
    )
    p.add_argument("--model", action="append", required=True, metavar="[NAME=]DIR",
                   help="a model folder (or hub id) to serve, named NAME or after the folder; repeat for several. "
                   "The first is the default model of POST /")
    p.add_argument("--task", help="task of every model (default: from each folder's manifest or config.json)")
    p.add_argument("--dtype", help="ONNX variant: fp32, int8, fp16 (default: each folder's default)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads per model (default: onnxruntime's)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch-size", type=int, default=32, help="requests coalesced into one pipeline call (1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long the oldest request waits for others")
    p.add_argument("--max-queue", type=int, default=256, help="requests waiting per model before new ones get 503")
    p.add_argument("--max-batch-tokens", type=int,
                   help="token budget of one batched call of text inputs: requests x the longest one's tokens stays within "
                   "it, so long inputs run with few others and short ones fill a call (default: off, --max-batch-size only)")
    p.add_argument("--max-client-batch-size", type=int,
                   help="inputs one request to a text-embeddings-inference route (/embed, /rerank, /predict...) may carry; "
                   "413 past it (default 32, as TEI)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a request is answered 504")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="larger bodies get 413")
    p.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                   help=f"require 'Authorization: Bearer KEY' on every route but /health (default: ${API_KEY_ENV})")
    p.add_argument("--drain-timeout", type=float, help="on SIGTERM, seconds to let in-flight requests finish (default 30)")
    p.add_argument("--embedding-pooling", choices=EMBEDDING_POOLINGS,
                   help="sentence vector of /v1/embeddings: mean of the tokens, the first token, or the folder's own "
                   "sentence-transformers configuration (pooling, Dense, Normalize, prompts; default mean)")
    p.add_argument("--allow-media-files", action="store_true",
                   help="let image/audio inputs name files on this machine (default: only inline base64 data)")
    p.add_argument("--allow-media-urls", action="store_true",
                   help="let image/audio inputs be http(s) URLs the server fetches (default: only inline base64 data)")
    add_limit_arguments(p)
    ray = p.add_argument_group("Ray Serve (needs the ray extra)")
    ray.add_argument("--ray", action="store_true", help="deploy on Ray Serve instead of the built-in server")
    ray.add_argument("--ray-address", help="an existing cluster ('auto', 'ray://HOST:10001'; default: start a local Ray)")
    ray.add_argument("--min-replicas", type=int, help="replicas per model (default 1)")
    ray.add_argument("--max-replicas", type=int, help="autoscale up to this many replicas per model (default: --min-replicas)")
    ray.add_argument("--replica-cpus", type=float, help="CPUs Ray reserves per replica (default 1)")
    return p


LIMIT_HELP = {
    "max_num_beams": "beams of beam search",
    "max_num_return_sequences": "sequences returned per input",
    "max_new_tokens": "tokens generated per sequence (max_new_tokens, or max_length past the prompt)",
    "max_input_tokens": "prompt tokens of a generation model",
    "max_audio_seconds": "seconds of audio per input",
    "min_sample_rate": "lowest sampling rate (Hz) of an audio input",
    "max_sample_rate": "highest sampling rate (Hz) of an audio input",
    "max_image_pixels": "pixels of an image input",
    "max_inputs_per_request": "inputs in one request (a list), at least --max-batch-size",
}


def _limit_value(name: str):
    """An argparse type for limit `name`: a number, or 'none' (no limit)."""

    def parse(text: str):
        try:
            return parse_limit(name, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def add_limit_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per field of onnxpipe.limits.Limits, and --limits FILE.json (the flags override the file)."""
    group = p.add_argument_group("limits (a request past one gets 422 naming it; 'none' turns one off)")
    group.add_argument("--limits", metavar="FILE.json",
                       help='a JSON object of limits, e.g. {"max_num_beams": 4, "max_audio_seconds": 60}; flags override it')
    defaults = Limits()
    for name, flag in LIMIT_FLAGS.items():
        default = getattr(defaults, name)
        shown = "the model's own limit" if default is None else default
        group.add_argument(flag, dest=name, metavar="N", type=_limit_value(name),
                           help=f"{LIMIT_HELP[name]} (default: {shown})")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run `onnxpipe serve` with `argv`; the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    wrong_mode = [name for name in (RAY_ONLY if not args.ray else SERVER_ONLY) if getattr(args, name) is not None]
    if wrong_mode:
        flags = ", ".join("--" + name.replace("_", "-") for name in wrong_mode)
        parser.error(f"{flags} {'need' if not args.ray else 'do not apply with'} --ray.")
    extra, need = ("ray", RAY_MODULES) if args.ray else ("serve", SERVE_MODULES)
    absent = missing(need)
    if absent:
        print(f"error: `onnxpipe serve{' --ray' if args.ray else ''}` needs the {extra} extra ({', '.join(absent)} "
              f"not installed). Install it with: {RAY_INSTALL if args.ray else SERVE_INSTALL}", file=sys.stderr)
        return 1
    try:
        config = ServeConfig.from_specs(
            args.model, task=args.task, dtype=args.dtype, device=args.device, threads=args.threads, host=args.host,
            port=args.port, max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
            timeout_s=args.timeout, max_body_bytes=args.max_body_bytes, api_key=args.api_key,
            allow_media_files=args.allow_media_files, allow_media_urls=args.allow_media_urls,
            limits=limits_from(args.limits, {name: getattr(args, name) for name in LIMIT_FLAGS}),
            **({} if args.drain_timeout is None else {"drain_timeout_s": args.drain_timeout}),
            **({} if args.embedding_pooling is None else {"embedding_pooling": args.embedding_pooling}),
            **({} if args.max_client_batch_size is None else {"max_client_batch_size": args.max_client_batch_size}),
            **({} if args.max_batch_tokens is None else {"max_batch_tokens": args.max_batch_tokens}),
        )
        if args.ray:
            low = 1 if args.min_replicas is None else args.min_replicas
            ray_options = RayOptions(
                address=args.ray_address, min_replicas=low,
                max_replicas=low if args.max_replicas is None else args.max_replicas,
                replica_cpus=1.0 if args.replica_cpus is None else args.replica_cpus,
            )
    except ValueError as exc:
        parser.error(str(exc))
    # The one place serving/ imports its own modules lazily: server.py and ray_app.py import uvicorn, starlette
    # and ray at their top, and those are optional extras, found missing above without importing them.
    if args.ray:
        from onnxpipe.serving.ray_app import run as run_ray

        return run_ray(config, ray_options)
    from onnxpipe.serving.server import run

    return run(config)
