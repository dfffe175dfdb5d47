"""Summaries of timing samples and the ratios between engines, computed only from measured values."""

from __future__ import annotations

import statistics
from typing import Any, Optional, Sequence

BASELINE = "transformers torch fp32"


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between the closest ranks."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(total_s: Sequence[float], core_s: Sequence[float], items: int) -> dict[str, Any]:
    """Latency median / p95 / mean in ms, throughput in items/s, and the pipeline's overhead over its core call.

    Overhead is the median of per-call (total - core) differences, as ms and as a share of the median core time.
    """
    median = statistics.median(total_s)
    core_median = statistics.median(core_s)
    overhead = statistics.median([t - c for t, c in zip(total_s, core_s)])
    return {
        "runs": len(total_s),
        "median_ms": 1000 * median,
        "min_ms": 1000 * min(total_s),
        "p95_ms": 1000 * percentile(total_s, 95),
        "mean_ms": 1000 * statistics.fmean(total_s),
        "items_per_s": items / median,
        "core_median_ms": 1000 * core_median,
        "overhead_ms": 1000 * overhead,
        "overhead_pct": 100 * overhead / core_median if core_median > 0 else None,
        "samples_ms": [1000 * t for t in total_s],
        "core_samples_ms": [1000 * c for c in core_s],
    }


def ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    """numerator / denominator, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def paired_ratio(numerator_ms: Optional[Sequence[float]], denominator_ms: Optional[Sequence[float]]) -> Optional[float]:
    """Median over rounds of numerator / denominator, pairing the calls of the same round.

    Engines take turns call by call, so the two calls of a round ran seconds apart at most: when other work on the
    machine comes and goes, each pair sees the same load, which the ratio of two medians does not guarantee.
    """
    if not numerator_ms or not denominator_ms or len(numerator_ms) != len(denominator_ms):
        return None
    return statistics.median(n / d for n, d in zip(numerator_ms, denominator_ms) if d > 0)


def latency_ratios(results: list[dict[str, Any]], baseline: str = BASELINE) -> list[dict[str, Any]]:
    """Per (batch, seq, engine): speed-up over the baseline and over Optimum on the same ONNX file, as the ratio of
    medians and as the median of per-round (paired) ratios."""
    by_key = {(r["batch_size"], r["seq_len"], r["engine"]): r for r in results}
    rows = []
    for r in results:
        if r["engine"] == baseline:
            continue
        base = by_key.get((r["batch_size"], r["seq_len"], baseline))
        row = {
            "batch_size": r["batch_size"], "seq_len": r["seq_len"], "engine": r["engine"],
            "speedup_vs_baseline": ratio(base and base["median_ms"], r["median_ms"]),
            "throughput_vs_baseline": ratio(r["items_per_s"], base and base["items_per_s"]),
            "paired_speedup_vs_baseline": paired_ratio(base and base.get("samples_ms"), r.get("samples_ms")),
        }
        if r["engine"].startswith("onnxpipe "):
            optimum = by_key.get((r["batch_size"], r["seq_len"], "optimum " + r["engine"].split(" ", 1)[1]))
            row["speedup_vs_optimum_same_file"] = ratio(optimum and optimum["median_ms"], r["median_ms"])
            row["paired_speedup_vs_optimum_same_file"] = paired_ratio(optimum and optimum.get("samples_ms"), r.get("samples_ms"))
        rows.append(row)
    return rows


def engine_ratios(engines: list[dict[str, Any]], baseline: str = BASELINE) -> list[dict[str, Any]]:
    """Per engine: how many times faster its cold start is (ratio of medians, and paired by round: the engines start
    in turn), and how many times smaller its peak RSS and installed footprint are."""
    base = next((e for e in engines if e["name"] == baseline), None)
    rows = []
    for e in engines:
        if e["name"] == baseline:
            continue
        rows.append({
            "engine": e["name"],
            "cold_start_x_faster": ratio(base and base.get("cold_start_s"), e.get("cold_start_s")),
            "paired_cold_start_x_faster": paired_ratio(base and base.get("cold_start_samples_s"), e.get("cold_start_samples_s")),
            "peak_rss_x_smaller": ratio(base and base.get("peak_rss_mb"), e.get("peak_rss_mb")),
            "footprint_x_smaller": ratio(base and base.get("footprint_mb"), e.get("footprint_mb")),
        })
    return rows
