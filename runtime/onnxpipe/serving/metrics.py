"""Prometheus text exposition, written by hand (no client library): counters, gauges and histograms with labels."""

from __future__ import annotations

import math
import threading
from typing import Callable, Iterable, Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()):
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self.values: dict[tuple[str, ...], float] = {}
        self.lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add `amount` to the series of these label values."""
        with self.lock:
            self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, *labels: str) -> float:
        """The current value of one series (0 when never incremented)."""
        with self.lock:
            return self.values.get(labels, 0.0)

    def samples(self) -> Iterable[str]:
        """One exposition line per series."""
        with self.lock:
            items = sorted(self.values.items())
        for labels, value in items:
            yield f"{self.name}{_labels(self.label_names, labels)} {_number(value)}"


class Gauge:
    """A value read when scraped, from a callback returning {label values: value}."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labels: Sequence[str], read: Callable[[], dict[tuple[str, ...], float]]):
        self.name, self.help, self.label_names, self.read = name, help_text, tuple(labels), read

    def samples(self) -> Iterable[str]:
        """One exposition line per series, read now."""
        for labels, value in sorted(self.read().items()):
            yield f"{self.name}{_labels(self.label_names, labels)} {_number(value)}"


class Histogram:
    """Cumulative buckets, sum and count per label set."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS):
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self.buckets = tuple(sorted(buckets))
        self.series: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., +Inf count, sum
        self.lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        """Record one observation in the series of these label values."""
        with self.lock:
            row = self.series.setdefault(labels, [0.0] * (len(self.buckets) + 2))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    row[i] += 1
            row[-2] += 1
            row[-1] += value

    def counts(self, *labels: str) -> dict[float, float]:
        """{upper bound: cumulative count} of one series, +Inf included (empty when never observed)."""
        with self.lock:
            row = list(self.series.get(labels, []))
        if not row:
            return {}
        return {**dict(zip(self.buckets, row)), math.inf: row[-2]}

    def samples(self) -> Iterable[str]:
        """Bucket, sum and count lines per series."""
        with self.lock:
            items = sorted((k, list(v)) for k, v in self.series.items())
        for labels, row in items:
            for bound, count in zip(self.buckets + (math.inf,), row[:-1]):
                extra = f'le="{_number(bound)}"'
                yield f"{self.name}_bucket{_labels(self.label_names, labels, extra)} {_number(count)}"
            yield f"{self.name}_sum{_labels(self.label_names, labels)} {_number(row[-1])}"
            yield f"{self.name}_count{_labels(self.label_names, labels)} {_number(row[-2])}"


class ServerMetrics:
    """The metrics `GET /metrics` shows: requests, errors by kind, queue depth, in-flight, batch sizes, latencies."""

    def __init__(self, queue_depths: Callable[[], dict[tuple[str, ...], float]], in_flight: Callable[[], float]):
        self.requests = Counter("onnxpipe_requests_total", "HTTP requests answered.", ("model", "route", "code"))
        self.errors = Counter("onnxpipe_errors_total", "Requests answered with an error, by kind.", ("model", "kind"))
        self.queue_depth = Gauge("onnxpipe_queue_depth", "Requests waiting for the model's worker.", ("model",), queue_depths)
        self.in_flight = Gauge("onnxpipe_in_flight_requests", "Inference requests being handled.", (), lambda: {(): in_flight()})
        self.batch_size = Histogram(
            "onnxpipe_batch_size", "Requests answered by one pipeline call.", ("model",), BATCH_BUCKETS
        )
        self.probes = Counter("onnxpipe_batch_probes_total", "Kinds of request probed for batching, by outcome.", ("model", "rule"))
        self.latency = Histogram("onnxpipe_request_duration_seconds", "Time to answer a request.", ("model", "route"))
        self.queue_wait = Histogram("onnxpipe_queue_wait_seconds", "Time a request waited before its pipeline call.", ("model",))
        self.run_time = Histogram("onnxpipe_pipeline_call_seconds", "Time of one pipeline call.", ("model",))
        self.all = (
            self.requests, self.errors, self.queue_depth, self.in_flight, self.batch_size, self.probes,
            self.latency, self.queue_wait, self.run_time,
        )

    def render(self) -> str:
        """The Prometheus text format (version 0.0.4)."""
        lines = []
        for metric in self.all:
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"
