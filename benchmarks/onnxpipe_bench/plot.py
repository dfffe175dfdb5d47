"""A PNG chart of one or more benchmark records, one column each: latency speed-up over the baseline, then
start-up / memory / installed-size ratios, then absolute median latency (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .report import configurations

BENCH_INSTALL = "pip install 'onnxpipe[bench]'"
ENGINE_RATIOS = (("cold_start_x_faster", "cold start\n(x faster)"), ("peak_rss_x_smaller", "peak RSS\n(x smaller)"),
                 ("footprint_x_smaller", "installed size\n(x smaller)"))


def plot(records: Sequence[dict[str, Any]], output: Path) -> Path:
    """Write the chart of `records` to `output`; ImportError names the extra when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(f"--plot needs matplotlib: {BENCH_INSTALL}") from exc
    names = list(dict.fromkeys(e["name"] for record in records for e in record["engines"]))
    colors = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
    figure, axes = plt.subplots(3, len(records), figsize=(6.5 * len(records), 11), squeeze=False)
    for column, record in enumerate(records):
        title = record.get("title") or record["task"]
        configs = configurations(record)
        labels = [f"{b}x{s}" for b, s in configs]
        cells = {(r["batch_size"], r["seq_len"], r["engine"]): r["speedup_vs_baseline"] for r in record["ratios"]["latency"]}
        top = axes[0][column]
        _bars(top, labels, [[cells.get((b, s, n)) for b, s in configs] for n in names], names, colors)
        top.axhline(1.0, color="black", linewidth=0.8)
        top.set_title(f"{title}\nspeed-up over {record['ratios']['baseline']} (median latency ratio)", fontsize=9)
        top.set_xlabel("batch size x tokens per input", fontsize=8)
        ratios = {r["engine"]: r for r in record["ratios"]["engines"]}
        middle = axes[1][column]
        _bars(middle, [label for _, label in ENGINE_RATIOS],
              [[ratios.get(n, {}).get(key) for key, _ in ENGINE_RATIOS] for n in names], names, colors)
        middle.axhline(1.0, color="black", linewidth=0.8)
        middle.set_title("start-up, memory and size: ratio to the baseline", fontsize=9)
        cells = {(r["batch_size"], r["seq_len"], r["engine"]): r["median_ms"] for r in record["results"]}
        bottom = axes[2][column]
        _bars(bottom, labels, [[cells.get((b, s, n)) for b, s in configs] for n in names], names, colors)
        bottom.set_yscale("log")
        bottom.set_title("median latency per call (ms, log scale)", fontsize=9)
        bottom.set_xlabel("batch size x tokens per input", fontsize=8)
    figure.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output


def _bars(ax: Any, labels: list[str], values: list[list[Any]], names: list[str], colors: dict[str, Any]) -> None:
    """Grouped bars: one group per label, one bar per engine that has a value somewhere on this axis."""
    series = [(n, v) for n, v in zip(names, values) if any(x is not None for x in v)]
    width = 0.8 / max(len(series), 1)
    for i, (name, heights) in enumerate(series):
        ax.bar([x + i * width for x in range(len(labels))], [h or 0.0 for h in heights], width, label=name, color=colors[name])
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))])
    ax.set_xticklabels(labels, fontsize=8)
    if series:
        ax.legend(fontsize=7)
