"""The cross-model tables of `benchmarks/run_all`: one headline row per model and engine, and the issue's targets
checked against the bert-base text-classification record."""

from __future__ import annotations

from typing import Any, Optional

from .report import input_kind, markdown_table, ratio_text
from .stats import BASELINE

HEADLINE_SEQ = 128  # the "about 128 tokens" of the targets
TARGET_RECORD = "bert-base-text-classification"


HEADLINE_BATCH = 32


def headline_config(record: dict[str, Any]) -> tuple[Any, int]:
    """(input size, large batch) of a record's headline columns: 128 tokens (else the measured size nearest it) and
    batch 32 for text models; the picture size and the largest batch measured for image models."""
    sizes = list(dict.fromkeys(r["seq_len"] for r in record["results"]))
    pictures = [s for s in sizes if isinstance(s, str)]  # picture size or clip length: the first one measured
    if pictures:
        return pictures[0], max(r["batch_size"] for r in record["results"])
    if sizes and HEADLINE_SEQ not in sizes:  # e.g. text-to-audio's 100 characters: the size nearest 128
        return min(sizes, key=lambda s: abs(s - HEADLINE_SEQ)), HEADLINE_BATCH
    return HEADLINE_SEQ, HEADLINE_BATCH


def _result(record: dict[str, Any], engine: str, batch: int, seq: Any = None) -> Optional[dict[str, Any]]:
    seq = headline_config(record)[0] if seq is None else seq
    return next((r for r in record["results"] if (r["engine"], r["batch_size"], r["seq_len"]) == (engine, batch, seq)), None)


def _latency_ratio(record: dict[str, Any], engine: str, batch: int, key: str) -> Optional[float]:
    seq = headline_config(record)[0]
    row = next((r for r in record["ratios"]["latency"]
                if (r["engine"], r["batch_size"], r["seq_len"]) == (engine, batch, seq)), None)
    return row.get(key) if row else None


def _engine_ratio(record: dict[str, Any], engine: str, key: str) -> Optional[float]:
    row = next((r for r in record["ratios"]["engines"] if r["engine"] == engine), None)
    return row.get(key) if row else None


def _cell(value: Optional[float], ratio: Optional[float] = None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" + (f" ({ratio:.1f}x)" if ratio is not None else "")


def headline_table(records: list[dict[str, Any]]) -> list[str]:
    """Per model and engine: batch-1 latency, batch-32 throughput, cold start, peak RSS and installed size,
    each with its ratio to the transformers pipeline (speed-up, or times smaller)."""
    rows = []
    for record in records:
        engines = {e["name"]: e for e in record["engines"]}
        seq, big = headline_config(record)
        for name, engine in engines.items():
            one, many = _result(record, name, 1), _result(record, name, big)
            rows.append([
                record.get("title", record["task"]), name,
                _cell(one and one["median_ms"], _latency_ratio(record, name, 1, "speedup_vs_baseline"), 2),
                ratio_text(_latency_ratio(record, name, 1, "speedup_vs_optimum_same_file")),
                ("" if big == HEADLINE_BATCH else f"batch {big}: ")
                + _cell(many and many["items_per_s"], _latency_ratio(record, name, big, "throughput_vs_baseline")),
                _cell(engine["cold_start_s"], _engine_ratio(record, name, "cold_start_x_faster"), 2),
                _cell(engine["peak_rss_mb"], _engine_ratio(record, name, "peak_rss_x_smaller"), 0),
                _cell(engine["footprint_mb"], _engine_ratio(record, name, "footprint_x_smaller"), 0),
            ])
    header = ["model", "engine", "batch 1 median ms (speed-up)", "vs Optimum, same file",
              f"batch {HEADLINE_BATCH} items/s (x torch)", "cold start s (x faster)", "peak RSS MB (x smaller)",
              "installed MB (x smaller)"]
    return [f"Ratios are against {BASELINE} in the same run; text inputs of {HEADLINE_SEQ} tokens (documents: question "
            "+ words; text-to-audio: characters; the nearest size measured otherwise), image inputs 480x640 pictures "
            "(image-to-image: 128x128), audio inputs 30 s clips (decoded before timing; an image or audio model's largest "
            "batch is named in its cell).", ""] + markdown_table(header, rows, 2)


def _first_rss_ratio(record: dict[str, Any], engine: str) -> Optional[float]:
    engines = {e["name"]: e for e in record["engines"]}
    if engine not in engines or BASELINE not in engines:
        return None
    return engines[BASELINE]["rss_at_first_result_mb"] / engines[engine]["rss_at_first_result_mb"]


def targets(record: dict[str, Any], engine: str = "onnxpipe int8") -> list[tuple[str, str, Optional[float], Optional[float], Optional[bool]]]:
    """(target, wanted, measured, paired per-round ratio or None, met) for each of the issue's targets, from one
    record; "met" judges the measured value (ratios of medians, as the issue states its targets)."""
    one = _result(record, engine, 1)
    overhead = one["overhead_pct"] if one else None

    def latency(batch: int, key: str) -> tuple[Optional[float], Optional[float]]:
        return _latency_ratio(record, engine, batch, key), _latency_ratio(record, engine, batch, "paired_" + key)

    checks = [
        (f"{engine} vs transformers fp32, batch 1 x {HEADLINE_SEQ}", ">= 3.5x", *latency(1, "speedup_vs_baseline"), 3.5, True),
        (f"{engine} vs Optimum pipeline, same file, batch 1 x {HEADLINE_SEQ}", ">= 1.2x", *latency(1, "speedup_vs_optimum_same_file"), 1.2, True),
        (f"pipeline overhead over session.run, batch 1 x {HEADLINE_SEQ} (%)", "<= 5", overhead, None, 5.0, False),
        (f"throughput vs transformers, batch 32 x {HEADLINE_SEQ}", ">= 2.5x", *latency(32, "speedup_vs_baseline"), 2.5, True),
        ("cold start vs transformers (x faster)", ">= 10x", _engine_ratio(record, engine, "cold_start_x_faster"),
         _engine_ratio(record, engine, "paired_cold_start_x_faster"), 10.0, True),
        ("installed footprint vs torch + transformers (x smaller)", ">= 8x", _engine_ratio(record, engine, "footprint_x_smaller"), None, 8.0, True),
        ("peak RSS over the whole grid vs transformers (x smaller)", ">= 3x", _engine_ratio(record, engine, "peak_rss_x_smaller"), None, 3.0, True),
        ("RSS at the first result vs transformers (x smaller)", ">= 3x", _first_rss_ratio(record, engine), None, 3.0, True),
    ]
    return [(name, wanted, value, paired, None if value is None else (value >= bound if higher else value <= bound))
            for name, wanted, value, paired, bound, higher in checks]


def targets_table(records: list[dict[str, Any]]) -> list[str]:
    """The targets table for the bert-base text-classification record, or nothing when it was not measured."""
    record = next((r for r in records if r.get("slug") == TARGET_RECORD), None)
    if record is None:
        return []
    rows = [[name, wanted, "n/a" if value is None else f"{value:.2f}", "" if paired is None else f"{paired:.2f}",
             {True: "met", False: "NOT met", None: "n/a"}[met]] for name, wanted, value, paired, met in targets(record)]
    return ["Targets of issue #7 (one run, bert-base text-classification; judged on ratios of medians, the paired "
            "column is the median of per-round ratios):", ""] + markdown_table(["target", "wanted", "measured", "paired", "result"], rows, 1)


# issue #4's text-generation tokens/s targets over transformers torch fp32, per onnxpipe dtype (summarization has
# no tokens/s target: the issue asks for its latency)
GENERATION_TARGETS = {"fp32": 1.5, "int8": 2.5, "q4": 2.5}


def is_generation(record: dict[str, Any]) -> bool:
    """Whether a record holds text generation rows (tokens/s); Whisper's audio rows stay in the headline table."""
    return input_kind(record) == "generation"


def _target_cell(task: str, engine: str, ratio: Optional[float]) -> str:
    """"met" / "NOT met" against GENERATION_TARGETS for an onnxpipe text-generation engine; "" for the others."""
    kind, _, dtype = engine.partition(" ")
    bound = GENERATION_TARGETS.get(dtype) if kind == "onnxpipe" and task == "text-generation" else None
    if bound is None:
        return ""
    if ratio is None:
        return f">= {bound}x: n/a"
    return f">= {bound}x: {'met' if ratio >= bound else 'NOT met'}"


def generation_headline(records: list[dict[str, Any]]) -> list[str]:
    """Per generation model and engine, at batch 1: tokens/s with its ratio to torch and issue #4's target,
    time per token, the decoding loop's overhead per step and its share of the call, cold start."""
    rows = []
    for record in records:
        ratios = {(r["engine"], r["batch_size"]): r.get("throughput_vs_baseline") for r in record["ratios"]["latency"]}
        engines = {e["name"]: e for e in record["engines"]}
        for r in record["results"]:
            if r["batch_size"] != 1 or "tokens_per_s" not in r:
                continue
            ratio = ratios.get((r["engine"], 1))
            rows.append([
                record.get("title", record["task"]), r["engine"], f"{r['new_tokens']} after {r['seq_len']}",
                _cell(r["tokens_per_s"], ratio), _target_cell(record["task"], r["engine"], ratio), _cell(r["ms_per_token"], None, 2),
                _cell(r.get("overhead_per_step_ms"), None, 3), _cell(r.get("loop_share_pct")),
                _cell(engines.get(r["engine"], {}).get("cold_start_s"), None, 2),
            ])
    header = ["model", "engine", "new tokens after prompt", "tokens/s (x torch)", "issue #4 target", "ms / token",
              "loop overhead ms / step", "loop share %", "cold start s"]
    return [f"Generation at batch 1 (greedy for text-generation, the pipeline's beam search for summarization; every "
            f"engine generates exactly the new tokens shown). Ratios are against {BASELINE} in the same run.", ""] + markdown_table(header, rows, 2)
