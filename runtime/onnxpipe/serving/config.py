"""The server's options, checked once at start: which models to serve and how to batch, queue and guard them,
and, for `--ray`, how many replicas to run. Pure data: importing this module imports no web stack and no Ray."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from onnxpipe.limits import Limits
from onnxpipe.media_sources import MediaSources

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
EMBEDDING_POOLINGS = ("mean", "cls", "folder")  # folder: the model's sentence-transformers configuration


@dataclass(frozen=True)
class ModelSpec:
    """One served model: the name clients use in `/models/{name}` and the folder (or hub id) loaded at start."""

    name: str
    source: str

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """`DIR` (named after the folder) or `name=DIR`; raise ValueError naming the bad value."""
        name, sep, source = text.partition("=")
        if not sep or os.path.exists(text):
            name, source = "", text
        source = source.strip()
        if not source:
            raise ValueError(f"--model {text!r} names no folder; pass --model DIR or --model name=DIR.")
        if not name:
            name = os.path.basename(os.path.normpath(source)) or source
        if not _NAME.match(name):
            raise ValueError(
                f"model name {name!r} (from --model {text!r}) must be 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit; pass --model NAME=DIR to choose one."
            )
        return cls(name, source)


@dataclass(frozen=True)
class ServeConfig:
    """Everything `onnxpipe serve` was started with. The first model is the default one, served at `POST /`."""

    models: tuple[ModelSpec, ...]
    task: Optional[str] = None
    dtype: Optional[str] = None
    device: str = "cpu"
    threads: Optional[int] = None
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    # padded tokens one pipeline call may hold when batching text inputs (TEI's --max-batch-tokens); None: count only
    max_batch_tokens: Optional[int] = None
    timeout_s: float = 30.0
    max_body_bytes: int = 1 << 20
    drain_timeout_s: float = 30.0
    api_key: Optional[str] = field(default=None, repr=False)
    embedding_pooling: str = "mean"
    # inputs one request to a TEI route (/embed, /rerank, /predict, /similarity, /tokenize, /decode) may carry: 413 past it
    max_client_batch_size: int = 32
    # image/audio inputs in requests are inline data (base64) unless these are turned on: a string naming a
    # file or URL would otherwise make the server read its own files or fetch URLs for the client
    allow_media_files: bool = False
    allow_media_urls: bool = False
    # what one request may ask for (beams, tokens, audio, inputs...): safe defaults, passed to every pipeline
    limits: Limits = Limits()

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("serve needs at least one --model DIR (or --model name=DIR).")
        names = [spec.name for spec in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"two models are named {duplicates}; give each its own name with --model NAME=DIR.")
        _check(self.max_batch_size >= 1, f"--max-batch-size must be >= 1 (1 turns batching off), got {self.max_batch_size}.")
        _check(self.max_wait_ms >= 0, f"--max-wait-ms must be >= 0, got {self.max_wait_ms}.")
        _check(self.max_queue >= 1, f"--max-queue must be >= 1, got {self.max_queue}.")
        _check(self.max_batch_tokens is None or self.max_batch_tokens >= 1,
               f"--max-batch-tokens must be >= 1, got {self.max_batch_tokens}.")
        _check(self.max_client_batch_size >= 1, f"--max-client-batch-size must be >= 1, got {self.max_client_batch_size}.")
        _check(self.timeout_s > 0, f"--timeout must be > 0 seconds, got {self.timeout_s}.")
        _check(self.max_body_bytes >= 1, f"--max-body-bytes must be >= 1, got {self.max_body_bytes}.")
        _check(self.drain_timeout_s >= 0, f"--drain-timeout must be >= 0 seconds, got {self.drain_timeout_s}.")
        _check(0 < self.port < 65536, f"--port must be between 1 and 65535, got {self.port}.")
        _check(self.threads is None or self.threads >= 1, f"--threads must be >= 1, got {self.threads}.")
        _check(self.api_key is None or len(self.api_key) > 0, "--api-key must not be empty.")
        _check(isinstance(self.limits, Limits), f"limits must be an onnxpipe.limits.Limits, got {type(self.limits).__name__}.")
        most = self.limits.max_inputs_per_request
        _check(most is None or most >= self.max_batch_size,
               f"--max-inputs-per-request ({most}) must be >= --max-batch-size ({self.max_batch_size}): a batched call "
               "holds up to --max-batch-size inputs.")
        _check(
            self.embedding_pooling in EMBEDDING_POOLINGS,
            f"--embedding-pooling must be one of {', '.join(EMBEDDING_POOLINGS)}, got {self.embedding_pooling!r}.",
        )

    @property
    def media_sources(self) -> MediaSources:
        """Where string image/audio inputs of requests may point (nowhere but inline data by default)."""
        return MediaSources(files=self.allow_media_files, urls=self.allow_media_urls)

    @property
    def default_model(self) -> str:
        """The model `POST /` serves: the first one given."""
        return self.models[0].name

    @classmethod
    def from_specs(cls, models: Sequence[str], **options) -> ServeConfig:
        """Build from `--model` strings and the other options; raise ValueError with the fix."""
        return cls(models=tuple(ModelSpec.parse(text) for text in models), **options)


@dataclass(frozen=True)
class RayOptions:
    """Replica settings of `onnxpipe serve --ray`: a fixed count when min == max, Ray's autoscaling between them
    otherwise. Here rather than in ray_app.py so that `onnxpipe serve` can check them before importing Ray."""

    address: Optional[str] = None  # an existing cluster ("auto", "ray://host:10001"); None starts a local Ray
    min_replicas: int = 1
    max_replicas: int = 1
    replica_cpus: float = 1.0
    target_ongoing_requests: Optional[float] = None  # default: max_batch_size (a full batch per replica)

    def __post_init__(self) -> None:
        if self.min_replicas < 1 or self.max_replicas < self.min_replicas:
            raise ValueError(
                f"replicas must satisfy 1 <= --min-replicas <= --max-replicas, got {self.min_replicas} and {self.max_replicas}."
            )
        if self.replica_cpus <= 0:
            raise ValueError(f"--replica-cpus must be > 0, got {self.replica_cpus}.")


def _check(ok: bool, message: str) -> None:
    """ValueError(`message`) unless `ok`: the option checks of ServeConfig."""
    if not ok:
        raise ValueError(message)


def parse_limit(name: str, text: str) -> Any:
    """One limit's value as text gives it (a flag, a Ray `build_app` argument): a number of the limit's type, or
    "none" (no limit). ValueError naming the limit."""
    if text.strip().lower() in ("none", "off"):
        return "none"
    try:
        return float(text) if name == "max_audio_seconds" else int(text)
    except ValueError:
        raise ValueError(f"{name} expects a number or 'none', got {text!r}") from None


def limits_from(file: Optional[str], flags: Mapping[str, Any]) -> Limits:
    """The server's limits: the defaults, then a `--limits FILE.json` object ({"max_num_beams": 4, ...}; null turns a
    limit off), then each limit flag given (`flags`: field name -> value, None when not given, "none" to turn it off).
    ValueError naming the file or the value."""
    limits = Limits()
    if file is not None:
        try:
            with open(file, encoding="utf-8") as handle:
                values = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--limits {file!r} cannot be read as JSON ({exc}).") from None
        if not isinstance(values, dict):
            raise ValueError(f"--limits {file!r} must hold a JSON object of limits, e.g. {{\"max_num_beams\": 4}}.")
        limits = Limits.from_dict(values, limits)
    given = {name: (None if value == "none" else value) for name, value in flags.items() if value is not None}
    return Limits.from_dict(given, limits)
