"""The benchmark harness (`onnxpipe bench` / `python -m onnxpipe_bench`): one end-to-end run on a tiny model,
checked for structure and for ratios that come from the measured values. No timed assertions."""

from __future__ import annotations

import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
from types import SimpleNamespace

import pytest

from onnxpipe import cli
from onnxpipe_bench import footprint, stats
from onnxpipe_bench.bench import BenchOptions, engine_specs, resolve_model, time_configuration
from onnxpipe_bench.inputs import load_tokenizer, make_texts
from onnxpipe_bench.process import WorkerError

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def bench_run(models, tmp_path_factory):
    """One harness run: fp32 file, onnxpipe vs transformers vs Optimum, 2 batch sizes, 2 timed runs."""
    folder = models.get("bert", "text-classification").onnx
    out = tmp_path_factory.mktemp("bench")
    argv = [
        sys.executable, "-m", "onnxpipe_bench", "--model", str(folder), "--dtype", "fp32", "--batch-size", "1,2",
        "--seq-len", "12", "--runs", "2", "--warmup", "1", "--cold-runs", "1", "--compare", "torch,optimum",
        "--json", str(out / "r.json"), "--markdown", str(out / "r.md"), "--quiet",
    ] + (["--plot", str(out / "r.png")] if HAS_MATPLOTLIB else [])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "r.json").read_text()), (out / "r.md").read_text(), out


def test_record_structure(bench_run):
    record, _, _ = bench_run
    assert record["task"] == "text-classification"
    assert record["machine"]["cpu"] and record["machine"]["cores"] >= 1
    assert {"onnxruntime", "torch"} <= set(record["machine"]["versions"])
    names = [e["name"] for e in record["engines"]]
    assert names == ["onnxpipe fp32", "transformers torch fp32", "optimum fp32"], record["skipped"]
    assert len(record["results"]) == 2 * len(names)
    for r in record["results"]:
        assert r["runs"] == 2 and len(r["samples_ms"]) == 2 and r["tokens_per_input"] == 12
        assert r["p95_ms"] >= r["median_ms"] > 0 and r["core_median_ms"] > 0
    for e in record["engines"]:
        assert e["cold_start_s"] > 0 and e["peak_rss_mb"] > 0 and e["footprint_mb"] > 0
    onnxpipe = record["engines"][0]
    assert onnxpipe["heavy_modules_imported"] == []  # torch and transformers were blocked in its process
    assert onnxpipe["file"] == "model.onnx" and record["engines"][2]["file"] == "model.onnx"


def test_ratios_come_from_the_measured_values(bench_run):
    record, _, _ = bench_run
    by = {(r["batch_size"], r["engine"]): r for r in record["results"]}
    for r in record["results"]:
        assert r["median_ms"] == pytest.approx(statistics.median(r["samples_ms"]))
        assert r["items_per_s"] == pytest.approx(r["batch_size"] * 1000 / r["median_ms"])
    latency = {(r["batch_size"], r["engine"]): r for r in record["ratios"]["latency"]}
    for batch in (1, 2):
        base = by[(batch, stats.BASELINE)]["median_ms"]
        ours = latency[(batch, "onnxpipe fp32")]
        assert ours["speedup_vs_baseline"] == pytest.approx(base / by[(batch, "onnxpipe fp32")]["median_ms"])
        assert ours["speedup_vs_optimum_same_file"] == pytest.approx(
            by[(batch, "optimum fp32")]["median_ms"] / by[(batch, "onnxpipe fp32")]["median_ms"]
        )
        pairs = zip(by[(batch, stats.BASELINE)]["samples_ms"], by[(batch, "onnxpipe fp32")]["samples_ms"])
        assert ours["paired_speedup_vs_baseline"] == pytest.approx(statistics.median(b / o for b, o in pairs))
    engines = {e["name"]: e for e in record["engines"]}
    base = engines[stats.BASELINE]
    ratio = next(r for r in record["ratios"]["engines"] if r["engine"] == "onnxpipe fp32")
    assert ratio["cold_start_x_faster"] == pytest.approx(base["cold_start_s"] / engines["onnxpipe fp32"]["cold_start_s"])
    assert ratio["peak_rss_x_smaller"] == pytest.approx(base["peak_rss_mb"] / engines["onnxpipe fp32"]["peak_rss_mb"])
    assert ratio["footprint_x_smaller"] == pytest.approx(base["footprint_mb"] / engines["onnxpipe fp32"]["footprint_mb"])


def test_markdown_puts_ratios_before_absolute_times(bench_run):
    record, text, _ = bench_run
    first_ratio = text.index("Speed-up over transformers torch fp32")
    assert first_ratio < text.index("onnxpipe over Optimum") < text.index("Start-up, memory") < text.index("Absolute latency")
    speedup = next(r for r in record["ratios"]["latency"] if r["batch_size"] == 1 and r["engine"] == "onnxpipe fp32")
    assert f"| 1 x 12 | {speedup['speedup_vs_baseline']:.2f}x ({speedup['paired_speedup_vs_baseline']:.2f}x) |" in text
    assert text.count("| 2 x 12 | ") == 1 + 1 + 3  # speed-up row, Optimum row, one absolute row per engine


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="the bench extra (matplotlib) is not installed")
def test_plot_is_a_png(bench_run):
    _, _, out = bench_run
    assert (out / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_texts_have_exactly_the_asked_token_count(models):
    folder = models.get("bert", "text-classification").onnx
    texts = make_texts(folder, 3, 20)
    tokenizer = load_tokenizer(folder)
    assert len(set(texts)) == 3 and [len(tokenizer.encode(t).ids) for t in texts] == [20, 20, 20]
    assert make_texts(folder, 3, 20) == texts  # deterministic: the same inputs in every run


def test_summaries_and_ratios_on_known_numbers():
    summary = stats.summarize([0.010, 0.030, 0.020, 0.040], [0.008, 0.020, 0.019, 0.030], items=4)
    assert summary["median_ms"] == pytest.approx(25.0) and summary["items_per_s"] == pytest.approx(160.0)
    assert summary["p95_ms"] == pytest.approx(38.5) and summary["overhead_ms"] == pytest.approx(6.0)
    assert summary["overhead_pct"] == pytest.approx(100 * 6.0 / 19.5)
    results = [
        {"batch_size": 1, "seq_len": 8, "engine": stats.BASELINE, "median_ms": 30.0, "items_per_s": 1 / 0.03},
        {"batch_size": 1, "seq_len": 8, "engine": "onnxpipe int8", "median_ms": 6.0, "items_per_s": 1 / 0.006},
        {"batch_size": 1, "seq_len": 8, "engine": "optimum int8", "median_ms": 9.0, "items_per_s": 1 / 0.009},
    ]
    rows = {r["engine"]: r for r in stats.latency_ratios(results)}
    assert stats.paired_ratio([30.0, 60.0, 33.0], [6.0, 20.0, 11.0]) == pytest.approx(3.0)  # median of 5, 3, 3
    assert rows["onnxpipe int8"]["speedup_vs_baseline"] == pytest.approx(5.0)
    assert rows["onnxpipe int8"]["throughput_vs_baseline"] == pytest.approx(5.0)
    assert rows["onnxpipe int8"]["speedup_vs_optimum_same_file"] == pytest.approx(1.5)
    assert "speedup_vs_optimum_same_file" not in rows["optimum int8"]


def test_footprint_follows_the_dependency_closure():
    ours = footprint.closure(["onnxpipe"])
    assert {"onnxruntime", "numpy", "tokenizers"} <= set(ours.distributions)
    assert "torch" not in ours.distributions and ours.size_bytes == sum(ours.distributions.values())
    heavy = footprint.engine_footprint("transformers")
    assert heavy is not None and {"torch", "transformers", "numpy"} <= set(heavy.distributions)
    assert footprint.closure(["no-such-distribution-xyz"]).missing == ["no-such-distribution-xyz"]


def test_engines_without_a_checkpoint_are_skipped_with_a_note(models, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(models.get("bert", "text-classification").onnx, folder)
    manifest = json.loads((folder / "onnxpipe.json").read_text())
    manifest["source"]["model"] = str(tmp_path / "gone")
    (folder / "onnxpipe.json").write_text(json.dumps(manifest))
    options = BenchOptions(model=str(folder), dtypes=["fp32"], compare=["torch"])
    specs, skipped = engine_specs(options, *resolve_model(options))
    assert [s.name for s in specs] == ["onnxpipe fp32"]
    assert skipped[0]["engine"] == stats.BASELINE and "--checkpoint" in skipped[0]["reason"]


def test_an_engine_that_fails_leaves_the_rotation():
    class FakeWorker:
        def __init__(self, name: str, fails: bool):
            self.spec, self.fails, self.requests = SimpleNamespace(name=name), fails, 0

        def request(self, message):
            self.requests += 1
            if self.fails and message["calls"] == 1:
                raise WorkerError("b worker: boom")
            return {"total": [0.010] * message["calls"], "core": [0.008] * message["calls"]}

    good, bad = FakeWorker("a", False), FakeWorker("b", True)
    times, failed = time_configuration([good, bad], "k", BenchOptions(model="m", runs=4, warmup=2, pause=0))
    assert list(times) == ["a"] and times["a"] == ([0.010] * 4, [0.008] * 4)
    assert "boom" in failed["b"] and bad.requests == 2  # its warm-up, then the one call that failed


def test_cli_bench_forwards_to_the_harness_process(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "missing_bench_modules", lambda: [])
    monkeypatch.setattr(cli.subprocess, "call", lambda argv: calls.append(argv) or 0)
    assert cli.main(["bench", "--model", "m", "--runs", "3"]) == 0
    assert calls == [[sys.executable, "-m", "onnxpipe_bench", "--model", "m", "--runs", "3"]]


def test_cli_bench_without_the_extra_names_the_fix(monkeypatch, capsys):
    monkeypatch.setattr(cli, "missing_bench_modules", lambda: ["matplotlib"])
    assert cli.main(["bench", "--model", "m"]) == 1
    assert "pip install 'onnxpipe[bench]'" in capsys.readouterr().err


def test_image_tasks_are_benchmarked_on_decoded_pictures(vision_models, tmp_path):
    """An image model goes through the same harness: pictures instead of texts, Optimum's image pipeline, and the
    pre-processing share reported per engine."""
    folder = vision_models.get("vit").onnx
    argv = [
        sys.executable, "-m", "onnxpipe_bench", "--model", str(folder), "--dtype", "fp32", "--batch-size", "1,2",
        "--runs", "1", "--warmup", "0", "--cold-runs", "1", "--compare", "torch,optimum",
        "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md"), "--quiet",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "r.json").read_text())
    assert [e["name"] for e in record["engines"]] == ["onnxpipe fp32", "transformers torch fp32", "optimum fp32"], record["skipped"]
    assert {(r["batch_size"], r["seq_len"]) for r in record["results"]} == {(1, "480x640"), (2, "480x640")}
    assert all(r["tokens_per_input"] is None and r["median_ms"] > 0 for r in record["results"])
    text = (tmp_path / "r.md").read_text()
    assert "| batch x picture (h x w) |" in text and "onnxpipe fp32: pre- and post-processing" in text


def test_benchmark_pictures_are_deterministic_and_differ():
    from onnxpipe_bench.images import decode_images, make_images

    first, again = make_images(3, 24, 32, seed=1), make_images(3, 24, 32, seed=1)
    assert first == again and len(set(first)) == 3
    assert [im.size for im in decode_images(first)] == [(32, 24)] * 3


def test_speech_models_are_benchmarked_on_clips_with_long_ones_chunked(models, tmp_path):
    """Audio goes through the harness as clips of N seconds; clips over 30 s get chunk_length_s on every engine,
    and the report gives real-time factors."""
    from support import audio_checkpoints

    folder = models._once("audio-wav2vec2-ctc-group", "automatic-speech-recognition",
                          lambda f: audio_checkpoints.build_ctc(f, "group")).onnx
    argv = [
        sys.executable, "-m", "onnxpipe_bench", "--model", str(folder), "--dtype", "fp32", "--batch-size", "1",
        "--seq-len", "1,31", "--runs", "1", "--warmup", "0", "--cold-runs", "1", "--compare", "torch",
        "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md"), "--quiet",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "r.json").read_text())
    assert [e["name"] for e in record["engines"]] == ["onnxpipe fp32", "transformers torch fp32"], record["skipped"]
    assert [(r["seq_len"], r["engine"]) for r in record["results"]] == [
        (size, engine) for size in ("1s", "31s") for engine in ("onnxpipe fp32", "transformers torch fp32")]
    assert any("chunk_length_s" in note for note in record["notes"])
    text = (tmp_path / "r.md").read_text()
    assert "| batch x clip |" in text and "onnxpipe fp32, batch 1 x 31s: real-time factor" in text


# --------------------------------------------------------------------------- generation rows (issue #4 "Speed")

GEN_NEW_TOKENS = 6  # tiny models: a handful of forced tokens is enough to check counting and the figures


def _generation_run(folder, tmp_path, *extra: str):
    argv = [
        sys.executable, "-m", "onnxpipe_bench", "--model", str(folder), "--batch-size", "1", "--runs", "1",
        "--warmup", "0", "--cold-runs", "1", "--new-tokens", str(GEN_NEW_TOKENS), "--compare", "torch,optimum",
        "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md"), "--quiet", *extra,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / "r.json").read_text()), (tmp_path / "r.md").read_text()


def _check_generation_rows(record, text, engines):
    """Every engine measured, forced to exactly GEN_NEW_TOKENS decoder steps, with figures from its samples."""
    assert [e["name"] for e in record["engines"]] == engines, record["skipped"]
    assert [r["engine"] for r in record["results"]] == engines
    for r in record["results"]:
        assert r["seq_len"] == 32 and r["tokens_per_input"] == 32  # the default prompt: exactly 32 tokens
        assert r["new_tokens"] == GEN_NEW_TOKENS
        # counted in the worker: one decoder (or torch forward) call per new token, on every engine alike
        assert r["decoder_steps"] == GEN_NEW_TOKENS and r["steps_samples"] == [GEN_NEW_TOKENS]
        assert r["tokens_per_s"] == pytest.approx(GEN_NEW_TOKENS * 1 * 1000 / r["median_ms"])
        assert r["ms_per_token"] == pytest.approx(r["median_ms"] / GEN_NEW_TOKENS)
        assert r["overhead_per_step_ms"] == pytest.approx(r["overhead_ms"] / GEN_NEW_TOKENS)
        assert r["loop_share_pct"] == pytest.approx(100 * r["overhead_ms"] / r["median_ms"])
        assert 0 < r["core_median_ms"] < r["median_ms"]
        row = f"| 1 x 32 | {r['engine']} | {GEN_NEW_TOKENS} | {r['tokens_per_s']:.1f} |"
        assert row in text, row
    assert record["engines"][0]["heavy_modules_imported"] == []
    assert text.index("Generation: tokens/s") < text.index("Absolute latency")
    assert f"min_new_tokens={GEN_NEW_TOKENS}" in text and f"max_new_tokens={GEN_NEW_TOKENS}" in text


def test_text_generation_rows_count_tokens_and_steps(generation_models, tmp_path):
    folder = generation_models.get("gpt2").onnx
    record, text = _generation_run(folder, tmp_path, "--dtype", "fp32")
    assert record["task"] == "text-generation"
    _check_generation_rows(record, text, ["onnxpipe fp32", "transformers torch fp32", "optimum fp32"])
    assert any("do_sample=False" in note for note in record["notes"])  # greedy on every engine
    assert [e["file"] for e in record["engines"]] == ["model.onnx", None, "model.onnx"]
    base = next(r for r in record["results"] if r["engine"] == stats.BASELINE)
    ours = next(r for r in record["ratios"]["latency"] if r["engine"] == "onnxpipe fp32")
    ours_row = record["results"][0]
    assert ours["throughput_vs_baseline"] == pytest.approx(ours_row["tokens_per_s"] / base["tokens_per_s"])


def test_summarization_rows_on_the_encoder_decoder_pair(generation_models, tmp_path):
    """T5 through the summarization pipelines (4 beams): the int8 pair of files on onnxpipe and on Optimum, which
    finds them under its standard names through symbolic links to the same files."""
    folder = generation_models.get("t5").onnx
    record, text = _generation_run(folder, tmp_path, "--dtype", "int8", "--task", "summarization")
    assert record["task"] == "summarization"
    _check_generation_rows(record, text, ["onnxpipe int8", "transformers torch fp32", "optimum int8"])
    pair = "encoder_model_quantized.onnx + decoder_model_merged_quantized.onnx"
    assert [e["file"] for e in record["engines"]] == [pair, None, pair]
    assert any("beam search" in note for note in record["notes"])


def test_generation_folders_list_the_decoder_dtypes(generation_models):
    from onnxpipe_bench.generation_bench import describe_files, optimum_skip_reason

    folder = generation_models.get("t5").onnx
    model, task, files = resolve_model(BenchOptions(model=str(folder)))
    assert task == "text2text-generation"
    assert {d: p.name for d, p in files.items()} == {
        "int8": "decoder_model_merged_quantized.onnx", "fp32": "decoder_model_merged.onnx"}
    assert describe_files(model, "fp32", "cpu") == "encoder_model.onnx + decoder_model_merged.onnx"
    assert optimum_skip_reason(model, "int8", "cpu") is None


def test_forced_new_tokens_only_apply_to_generation():
    from onnxpipe_bench.tasks import task_spec

    spec = task_spec("text-generation")
    assert spec.new_tokens == 128 and spec.call_options["min_new_tokens"] == 128 and spec.call_options["do_sample"] is False
    assert task_spec("summarization").new_tokens == 64
    forced = spec.with_new_tokens(9)
    assert forced.call_options == {"do_sample": False, "max_new_tokens": 9, "min_new_tokens": 9} and spec.new_tokens == 128
    with pytest.raises(ValueError, match="generation tasks"):
        task_spec("text-classification").with_new_tokens(9)
    with pytest.raises(ValueError, match="at least 1"):
        spec.with_new_tokens(0)


def test_generation_tokenizers_decode_every_id_and_encode_like_english(tmp_path):
    """The real-size builders' tokenizers: padded to the model's vocabulary with fillers that decode but that
    encoding never produces."""
    from tokenizers import Tokenizer

    from onnxpipe_bench.generation_models import gpt2_tokenizer, t5_tokenizer
    from onnxpipe_bench.inputs import PASSAGE

    for build, size, eos in ((gpt2_tokenizer, 3000, "<|endoftext|>"), (t5_tokenizer, 2000, "</s>")):
        folder = tmp_path / build.__name__
        build(size, tmp_path).save_pretrained(str(folder))
        raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
        assert raw.get_vocab_size() == size and raw.token_to_id(eos) is not None
        ids = raw.encode(PASSAGE).ids
        assert len(ids) < len(PASSAGE) / 2 and max(ids) < 1100  # learned pieces, never a filler
        assert raw.decode(ids).split() == PASSAGE.split()
        assert raw.decode([size - 1]) == f"<|f{size - 1}|>"


def test_generation_headline_judges_issue_4_targets_on_text_generation_only():
    from onnxpipe_bench.summary import generation_headline, is_generation

    def record(task, rows):
        results = [{"engine": e, "batch_size": 1, "seq_len": 32, "new_tokens": 128, "tokens_per_s": t, "ms_per_token": 1000 / t,
                    "overhead_per_step_ms": 0.5, "loop_share_pct": 4.0} for e, t in rows]
        base = dict(rows)[stats.BASELINE]
        ratios = [{"engine": e, "batch_size": 1, "seq_len": 32, "throughput_vs_baseline": t / base} for e, t in rows if e != stats.BASELINE]
        return {"task": task, "title": task, "results": results, "ratios": {"latency": ratios}, "engines": []}

    rows = [("onnxpipe fp32", 30.0), ("onnxpipe q4", 40.0), (stats.BASELINE, 20.0), ("optimum fp32", 25.0)]
    text = "\n".join(generation_headline([record("text-generation", rows), record("summarization", rows)]))
    assert is_generation(record("summarization", rows))
    assert "| text-generation | onnxpipe fp32 | 128 after 32 | 30.0 (1.5x) | >= 1.5x: met | 33.33 |" in text
    assert "| text-generation | onnxpipe q4 | 128 after 32 | 40.0 (2.0x) | >= 2.5x: NOT met |" in text
    assert "| text-generation | optimum fp32 | 128 after 32 | 25.0 (1.2x) |  |" in text
    assert "| summarization | onnxpipe fp32 | 128 after 32 | 30.0 (1.5x) |  |" in text  # no tokens/s target there
