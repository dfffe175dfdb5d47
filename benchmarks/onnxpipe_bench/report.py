"""The markdown report of a benchmark record: ratios first, absolute figures second."""

from __future__ import annotations

from typing import Any, Optional


def ratio_text(value: Optional[float]) -> str:
    """A ratio as the tables print it, "1.23x", or "n/a" when there is none."""
    return "n/a" if value is None else f"{value:.2f}x"


def _pair(of_medians: Optional[float], paired: Optional[float]) -> str:
    """A ratio of medians, with the paired (per-round) ratio beside it."""
    return ratio_text(of_medians) + (f" ({paired:.2f}x)" if paired is not None else "")


def _num(value: Optional[float], digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def configurations(record: dict[str, Any]) -> list[tuple[Any, Any]]:
    """The (batch size, input size) pairs of a record's results, in the order they were measured."""
    seen: dict[tuple[int, int], None] = {}
    for r in record["results"]:
        seen.setdefault((r["batch_size"], r["seq_len"]), None)
    return list(seen)


def input_kind(record: dict[str, Any]) -> str:
    """"text", "image", "audio" or "generation": what the record's inputs were (its size column says it; generation
    rows carry tokens/s; Whisper's audio rows carry them too and stay "audio")."""
    sizes = [r["seq_len"] for r in record["results"]]
    if any(isinstance(s, str) and s.endswith("s") for s in sizes):
        return "audio"
    if any("tokens_per_s" in r for r in record["results"]):
        return "generation"
    return "image" if any(isinstance(s, str) for s in sizes) else "text"


def _config_header(record: dict[str, Any]) -> str:
    """The first column's title: token counts for text, picture size for images, clip length for audio."""
    return {"text": "batch x tokens", "image": "batch x picture (h x w)", "audio": "batch x clip",
            "generation": "batch x prompt tokens"}[input_kind(record)]


def markdown_table(header: list[str], rows: list[list[str]], right_from: int = 1) -> list[str]:
    """The lines of a markdown table; columns from `right_from` on are right-aligned (figures)."""
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"] + ["| " + " | ".join(r) + " |" for r in rows]


def machine_line(record: dict[str, Any]) -> str:
    """One line naming the CPU, cores and the main library versions."""
    m = record["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if k in ("onnxruntime", "torch", "transformers", "optimum-onnx"))
    return f"{m['cpu']}, {m['usable_cores']} cores, {m['memory_gb']} GiB, Python {m['python']}; {versions}"


def speedup_table(record: dict[str, Any]) -> list[str]:
    """Median-latency speed-up of every engine over the transformers baseline, one row per configuration."""
    ratios = record["ratios"]["latency"]
    engines = list(dict.fromkeys(r["engine"] for r in ratios))
    cell = {(r["batch_size"], r["seq_len"], r["engine"]): _pair(r.get("speedup_vs_baseline"), r.get("paired_speedup_vs_baseline"))
            for r in ratios}
    rows = [[f"{b} x {s}"] + [cell.get((b, s, e), "n/a") for e in engines] for b, s in configurations(record)]
    return markdown_table([_config_header(record)] + engines, rows)


def optimum_table(record: dict[str, Any]) -> list[str]:
    """onnxpipe's speed-up over Optimum's pipeline on the same ONNX file, per dtype and configuration."""
    ratios = [r for r in record["ratios"]["latency"] if r.get("speedup_vs_optimum_same_file") is not None]
    if not ratios:
        return []
    dtypes = list(dict.fromkeys(r["engine"].split(" ", 1)[1] for r in ratios))
    cell = {(r["batch_size"], r["seq_len"], r["engine"].split(" ", 1)[1]):
            _pair(r["speedup_vs_optimum_same_file"], r.get("paired_speedup_vs_optimum_same_file")) for r in ratios}
    rows = [[f"{b} x {s}"] + [cell.get((b, s, d), "n/a") for d in dtypes] for b, s in configurations(record)]
    return markdown_table([_config_header(record)] + [f"{d} file" for d in dtypes], rows)


def engine_table(record: dict[str, Any]) -> list[str]:
    """Cold start, peak RSS and installed footprint per engine, each with its ratio to the baseline."""
    ratio = {r["engine"]: r for r in record["ratios"]["engines"]}
    rows = []
    for e in record["engines"]:
        r = ratio.get(e["name"], {})
        rows.append([
            e["name"], _num(e["cold_start_s"], 2), _pair(r.get("cold_start_x_faster"), r.get("paired_cold_start_x_faster")),
            _num(e["peak_rss_mb"], 0), ratio_text(r.get("peak_rss_x_smaller")),
            _num(e["footprint_mb"], 0), ratio_text(r.get("footprint_x_smaller")),
        ])
    return markdown_table(["engine", "cold start s", "x faster", "peak RSS MB", "x smaller", "footprint MB", "x smaller"], rows)


def latency_table(record: dict[str, Any]) -> list[str]:
    """Absolute figures: median and p95 latency, throughput, core call time and the pipeline's overhead."""
    rows = [[
        f"{r['batch_size']} x {r['seq_len']}", r["engine"], _num(r["median_ms"], 2), _num(r.get("min_ms"), 2), _num(r["p95_ms"], 2),
        _num(r["items_per_s"], 1), _num(r["core_median_ms"], 2), _num(r["overhead_ms"], 2), _num(r["overhead_pct"], 1), str(r["runs"]),
    ] for r in record["results"]]
    return markdown_table([_config_header(record), "engine", "median ms", "best ms", "p95 ms", "items/s", "core ms", "overhead ms", "overhead %", "runs"], rows, 2)


def generation_table(record: dict[str, Any]) -> list[str]:
    """Generation rows: tokens/s (and its ratio to the baseline's), time per new token, decoder steps per call,
    and the decoding loop's own overhead per step and as a share of the call."""
    speedup = {(r["batch_size"], r["seq_len"], r["engine"]): r.get("throughput_vs_baseline") for r in record["ratios"]["latency"]}
    rows = [[
        f"{r['batch_size']} x {r['seq_len']}", r["engine"], str(r["new_tokens"]), _num(r["tokens_per_s"], 1),
        ratio_text(speedup.get((r["batch_size"], r["seq_len"], r["engine"]))), _num(r["ms_per_token"], 2),
        _num(r.get("decoder_steps"), 0), _num(r.get("overhead_per_step_ms"), 3), _num(r.get("loop_share_pct"), 1),
    ] for r in record["results"] if "tokens_per_s" in r]
    return markdown_table([_config_header(record), "engine", "new tokens", "tokens/s", "x torch", "ms / token", "decoder steps",
                   "loop overhead ms / step", "loop share %"], rows, 2)


def processing_share_lines(record: dict[str, Any]) -> list[str]:
    """Image models: the share of a batch-1 call spent outside inference (decoding is done before timing, so this
    is resizing, normalizing and post-processing), per engine."""
    lines = []
    for r in record["results"]:
        if r["batch_size"] == 1 and r.get("overhead_ms") is not None and r["median_ms"]:
            share = 100.0 * r["overhead_ms"] / r["median_ms"]
            lines.append(f"- {r['engine']}: pre- and post-processing {r['overhead_ms']:.2f} ms = {share:.1f}% of a batch-1 call")
    return lines


def real_time_lines(record: dict[str, Any]) -> list[str]:
    """Audio models: the real-time factor (seconds of compute per second of audio) of each engine and clip."""
    lines = []
    for r in record["results"]:
        seconds = float(str(r["seq_len"]).rstrip("s")) * r["batch_size"]
        lines.append(f"- {r['engine']}, batch {r['batch_size']} x {r['seq_len']}: real-time factor "
                     f"{r['median_ms'] / 1000 / seconds:.4f} ({seconds * 1000 / r['median_ms']:.0f}x faster than real time)")
    return lines


def markdown(record: dict[str, Any], title: Optional[str] = None) -> str:
    """The whole report for one record."""
    lines = [f"### {title or record['task']}", "", f"`{record['model']}` on {record['device']}: {machine_line(record)}", ""]
    if any(r["speedup_vs_baseline"] is not None for r in record["ratios"]["latency"]):
        lines += [f"Speed-up over {record['ratios']['baseline']}: ratio of median latencies, same inputs, same run "
                  "(in brackets: the median of per-round ratios, each pairing two calls made seconds apart):", ""]
        lines += speedup_table(record) + [""]
    if any("tokens_per_s" in r for r in record["results"]):  # generation models, and Whisper's audio rows
        lines += ["Generation: tokens/s = new tokens x batch / median latency (every engine generates exactly the new "
                  "tokens shown); loop overhead = pipeline time minus core time (all graphs' `run`, or the torch "
                  "forward), per decoder step and as a share of the call:", ""] + generation_table(record) + [""]
    optimum = optimum_table(record)
    if optimum:
        lines += ["onnxpipe over Optimum's ORTModel pipeline on the same ONNX file:", ""] + optimum + [""]
    lines += ["Start-up, memory and installed size (ratios against the baseline):", ""] + engine_table(record) + [""]
    lines += [
        "Absolute latency (core = onnxruntime `InferenceSession.run`, or the torch model's forward; "
        "overhead = median of per-call pipeline time minus core time):", "",
    ] + latency_table(record) + [""]
    load = record["machine"].get("load_average") or {}
    busy = [x[0] for x in (load.get("start"), load.get("end")) if x]
    if busy and max(busy) > 0.5 * (record["machine"].get("usable_cores") or 1):
        lines.append(f"- the machine was busy with other work (1-minute load average {' -> '.join(f'{x:.1f}' for x in busy)}): "
                     "engines were alternated call by call, so ratios hold better than absolute times")
    if input_kind(record) in ("image", "audio"):
        lines += processing_share_lines(record)
    if input_kind(record) == "audio":
        lines += real_time_lines(record)
    for skip in record["skipped"]:
        lines.append(f"- skipped {skip['engine']}: {skip['reason'].splitlines()[0]}")
    for note in record["notes"]:
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"
