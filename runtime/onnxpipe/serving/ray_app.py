"""A Ray Serve deployment of the same pipelines: Ray's `@serve.batch` collects requests, the same `Coalescer` as
the HTTP server turns them into pipeline calls, and Ray scales replicas across a cluster.

Each model is one Serve application at `/models/{name}` answering the Hugging Face Inference API body. Run it with
`onnxpipe serve --ray --model DIR ...`, or with Ray's own CLI: `serve run onnxpipe.serving.ray_app:build_app model=DIR`.
On a multi-node cluster every node must reach the model folder at the same path (shared storage) or hold it in
its cache (a hub id is downloaded by each replica).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from typing import Any, Optional

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from onnxpipe.limits import FLAGS as LIMIT_FLAGS
from onnxpipe.limits import Limits
from onnxpipe.media_sources import MediaSources
from onnxpipe.pipelines import pipeline
from onnxpipe.serving.coalesce import Coalescer, Job, Outcome
from onnxpipe.serving.config import ModelSpec, RayOptions, ServeConfig, limits_from, parse_limit
from onnxpipe.serving.negotiation import check_acceptable, respond
from onnxpipe.serving.protocol import (
    RequestError,
    check_authorized,
    check_body_size,
    check_parameters,
    parse_inference,
    pipeline_error,
)

__all__ = ["PipelineDeployment", "RayOptions", "application", "build_app", "deploy", "run"]


@serve.deployment
class PipelineDeployment:
    """One replica: a pipeline, Ray's batching in front of it, the HF Inference API shape on HTTP."""

    def __init__(self, name: str, source: str, task: Optional[str] = None, dtype: Optional[str] = None,
                 device: str = "cpu", threads: Optional[int] = None, max_batch_size: int = 32,
                 max_wait_ms: float = 5.0, max_body_bytes: int = 1 << 20, api_key: Optional[str] = None,
                 allow_media_files: bool = False, allow_media_urls: bool = False,
                 limits: Optional[dict[str, Any]] = None):
        self.name, self.max_body_bytes, self.api_key = name, max_body_bytes, api_key
        self.pipe = pipeline(task, model=source, device=device, dtype=dtype, intra_op_num_threads=threads,
                             media_sources=MediaSources(files=allow_media_files, urls=allow_media_urls),
                             limits=Limits.from_dict(limits) if limits is not None else Limits())
        self.calls: Counter[int] = Counter()
        self.coalescer = Coalescer(self.pipe, max_batch_size, on_call=lambda n, seconds: self.calls.update([n]))
        self.run_batch.set_max_batch_size(max_batch_size)
        self.run_batch.set_batch_wait_timeout_s(max_wait_ms / 1000.0)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def run_batch(self, jobs: list[Job]) -> list[Outcome]:
        """Ray hands over the requests that arrived together; the Coalescer answers them off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, self.coalescer.run, jobs)

    def stats(self) -> dict[int, int]:
        """Pipeline calls of this replica by the number of requests each answered."""
        return dict(self.calls)

    async def __call__(self, request: Request) -> Response:
        try:
            check_authorized(request.headers, self.api_key)
            if request.method != "POST":
                raise RequestError(405, "method_not_allowed", f"POST a JSON body to /models/{self.name}.")
            body = await request.body()
            check_body_size(body, self.max_body_bytes)
            inputs, params = parse_inference(body, request.headers.get("content-type"))
            check_parameters(self.pipe, inputs, params)
            check_acceptable(request.headers.get("accept"))
            outcome = await self.run_batch(Job(inputs, params, enqueued=time.monotonic()))
            if outcome.error is not None:
                raise pipeline_error(outcome.error, self.name)
            return respond(outcome.value, request.headers.get("accept"), self.name)
        except RequestError as exc:
            return JSONResponse(exc.body(), exc.status, headers=exc.headers)


def application(spec: ModelSpec, config: ServeConfig, ray_options: Optional[RayOptions] = None) -> Any:
    """The Serve application of one model, with Ray's batching and replica settings from `config` and `ray_options`
    (default: one replica)."""
    replicas = ray_options or RayOptions()
    options: dict[str, Any] = {
        "name": f"onnxpipe-{spec.name}",
        # Ray may hand a replica this many requests at once: at least two full batches, so one can form while one runs
        "max_ongoing_requests": 2 * config.max_batch_size,
        "max_queued_requests": config.max_queue,
        "ray_actor_options": {"num_cpus": replicas.replica_cpus},
    }
    if replicas.max_replicas > replicas.min_replicas:
        options["autoscaling_config"] = {
            "min_replicas": replicas.min_replicas,
            "max_replicas": replicas.max_replicas,
            "target_ongoing_requests": replicas.target_ongoing_requests or config.max_batch_size,
        }
    else:
        options["num_replicas"] = replicas.min_replicas
    return PipelineDeployment.options(**options).bind(
        spec.name, spec.source, config.task, config.dtype, config.device, config.threads,
        config.max_batch_size, config.max_wait_ms, config.max_body_bytes, config.api_key,
        config.allow_media_files, config.allow_media_urls, config.limits.as_dict(),
    )


def deploy(config: ServeConfig, ray_options: RayOptions) -> dict[str, str]:
    """Start Serve (on `ray_options.address`, or a new local Ray) and deploy every model; name -> URL."""
    if not ray.is_initialized():
        ray.init(address=ray_options.address)
    serve.start(http_options={"host": config.host, "port": config.port, "request_timeout_s": config.timeout_s})
    urls = {}
    for spec in config.models:
        serve.run(application(spec, config, ray_options), name=spec.name, route_prefix=f"/models/{spec.name}")
        urls[spec.name] = f"http://{config.host}:{config.port}/models/{spec.name}"
    return urls


def run(config: ServeConfig, ray_options: RayOptions) -> int:
    """`onnxpipe serve --ray`: deploy, print the URLs, serve until Ctrl-C or SIGTERM, then shut Serve down."""
    urls = deploy(config, ray_options)
    for name, url in urls.items():
        print(f"{name}: POST {url}", flush=True)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda sig, frame: stopping.append(sig))
    try:
        while not stopping:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    print("shutting down Serve and Ray", flush=True)
    serve.shutdown()
    ray.shutdown()
    return 0


def build_app(args: dict[str, str]) -> Any:
    """For Ray's CLI: `serve run onnxpipe.serving.ray_app:build_app model=DIR [name=N task=T dtype=int8
    max_batch_size=32 max_wait_ms=5 min_replicas=1 max_replicas=4 replica_cpus=1 limits=FILE.json max_num_beams=4 ...]`:
    the limits take the same file and field names as `onnxpipe serve` ('none' turns one off)."""
    known = {"model", "name", "task", "dtype", "device", "threads", "max_batch_size", "max_wait_ms", "max_queue",
             "max_body_bytes", "min_replicas", "max_replicas", "replica_cpus", "target_ongoing_requests",
             "allow_media_files", "allow_media_urls", "limits", *LIMIT_FLAGS}
    unknown = sorted(set(args) - known)
    if unknown or "model" not in args:
        raise ValueError(f"build_app takes model=DIR and optionally {sorted(known - {'model'})}; got {sorted(args)}.")
    spec = ModelSpec.parse(f"{args['name']}={args['model']}" if "name" in args else args["model"])
    number = {"threads": int, "max_batch_size": int, "max_wait_ms": float, "max_queue": int, "max_body_bytes": int}
    config = ServeConfig(
        models=(spec,), task=args.get("task"), dtype=args.get("dtype"), device=args.get("device", "cpu"),
        **{k: cast(args[k]) for k, cast in number.items() if k in args},
        **{k: _flag(k, args[k]) for k in ("allow_media_files", "allow_media_urls") if k in args},
        limits=limits_from(args.get("limits"), {name: parse_limit(name, args[name]) for name in LIMIT_FLAGS if name in args}),
    )
    ray_options = RayOptions(
        min_replicas=int(args.get("min_replicas", 1)), max_replicas=int(args.get("max_replicas", args.get("min_replicas", 1))),
        replica_cpus=float(args.get("replica_cpus", 1.0)),
        target_ongoing_requests=float(args["target_ongoing_requests"]) if "target_ongoing_requests" in args else None,
    )
    return application(spec, config, ray_options)


def _flag(name: str, value: object) -> bool:
    """A boolean build_app argument (`serve run` passes strings): true/false, yes/no, 1/0."""
    text = str(value).strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}.")
