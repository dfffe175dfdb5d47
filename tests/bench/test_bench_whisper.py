"""The benchmark harness on Whisper (issue #7's whisper-tiny row): one run on the tiny Whisper of
whisper_checkpoints.py against torch and Optimum, checked for forced lengths (the same decoder steps on every
engine), audio and generation fields, and the report; plus the real-size builder's tokenizer layout. No timed
assertions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import whisper_checkpoints as wc

from onnxpipe_bench import summary
from onnxpipe_bench.tasks import WHISPER_SPEC, task_spec

TASK = "automatic-speech-recognition"
NEW_TOKENS = 5  # forced on every engine: EOS can come neither earlier nor later
ENGINES = ["onnxpipe fp32", "transformers torch fp32", "optimum fp32"]
PAIR = "encoder_model.onnx + decoder_model_merged.onnx"


@pytest.fixture(scope="module")
def whisper_run(models, tmp_path_factory):
    """One harness run on the tiny Whisper: a 2 s clip and a 31 s clip (chunk_length_s=30: two windows), fp32."""
    folder = models._once("whisper-tiny", TASK, wc.build_whisper).onnx  # the same export as the Whisper tests
    out = tmp_path_factory.mktemp("bench-whisper")
    argv = [
        sys.executable, "-m", "onnxpipe_bench", "--model", str(folder), "--dtype", "fp32", "--batch-size", "1",
        "--seq-len", "2,31", "--runs", "1", "--warmup", "0", "--cold-runs", "1", "--new-tokens", str(NEW_TOKENS),
        "--compare", "torch,optimum", "--json", str(out / "r.json"), "--markdown", str(out / "r.md"), "--quiet",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "r.json").read_text()), (out / "r.md").read_text()


def test_every_engine_runs_the_same_decoder_steps(whisper_run):
    """Counted in each worker: one decoder-graph run (onnxpipe, Optimum) or torch forward per forced token, per
    30 s window; the chunked 31 s clip is two windows on every engine."""
    record, _ = whisper_run
    assert [e["name"] for e in record["engines"]] == ENGINES, record["skipped"]
    assert [e["file"] for e in record["engines"]] == [PAIR, None, PAIR]
    assert record["engines"][0]["heavy_modules_imported"] == []
    steps = {(r["seq_len"], r["engine"]): r["steps_samples"] for r in record["results"]}
    windows = {"2s": 1, "31s": 2}
    assert steps == {(size, engine): [NEW_TOKENS * count] for size, count in windows.items() for engine in ENGINES}


def test_rows_carry_audio_and_generation_fields(whisper_run):
    record, _ = whisper_run
    for r in record["results"]:
        assert r["new_tokens"] == NEW_TOKENS and r["decoder_steps"] == r["steps_samples"][0]
        assert r["tokens_per_s"] == pytest.approx(NEW_TOKENS * 1000 / r["median_ms"])
        assert r["ms_per_token"] == pytest.approx(r["median_ms"] / NEW_TOKENS)
        assert r["overhead_per_step_ms"] == pytest.approx(r["overhead_ms"] / r["decoder_steps"])
        assert 0 < r["core_median_ms"] < r["median_ms"]  # encoder + decoder runs, or the torch forwards
        assert r["tokens_per_input"] is None and r["items_per_s"] == pytest.approx(1000 / r["median_ms"])
    options = " ".join(record["notes"])
    assert f"'max_new_tokens': {NEW_TOKENS}, 'min_new_tokens': {NEW_TOKENS}" in options and "'num_beams': 1" in options
    assert "{'chunk_length_s': 30}" in options and f"first result of a {NEW_TOKENS}-new-token generation" in options


def test_report_keeps_whisper_with_the_audio_rows(whisper_run):
    """The markdown gives real-time factors (audio) and the tokens/s table; the suite's headline table (beside
    wav2vec2), not the text-generation one, takes the record."""
    record, text = whisper_run
    assert "| batch x clip |" in text and text.index("Generation: tokens/s") < text.index("Absolute latency")
    row = next(r for r in record["results"] if r["seq_len"] == "31s" and r["engine"] == "onnxpipe fp32")
    assert f"| 1 x 31s | onnxpipe fp32 | {NEW_TOKENS} | {row['tokens_per_s']:.1f} |" in text
    assert f"onnxpipe fp32, batch 1 x 31s: real-time factor {row['median_ms'] / 31000:.4f}" in text
    assert not summary.is_generation(record)
    first = next(r for r in record["results"] if r["seq_len"] == "2s" and r["engine"] == "onnxpipe fp32")
    headline = "\n".join(summary.headline_table([record]))  # its audio column: the first clip measured
    assert f"| automatic-speech-recognition | onnxpipe fp32 | {first['median_ms']:.2f} (" in headline


def test_whisper_spec_is_chosen_by_model_type():
    assert task_spec(TASK, {"model_type": "whisper"}) is WHISPER_SPEC
    ctc = task_spec(TASK, {"model_type": "wav2vec2"})
    assert ctc.optimum_class == "ORTModelForCTC" and not ctc.generates and ctc.new_tokens is None
    forced = WHISPER_SPEC.with_new_tokens(7)
    assert forced.call_options["generate_kwargs"] == {"language": "en", "task": "transcribe", "num_beams": 1,
                                                      "max_new_tokens": 7, "min_new_tokens": 7}
    assert forced.new_tokens == 7 and WHISPER_SPEC.new_tokens == 64
    assert forced.options_for("300s") == {**forced.call_options, "chunk_length_s": 30}
    with pytest.raises(ValueError, match="generation tasks and Whisper"):
        ctc.with_new_tokens(7)


def test_whisper_tiny_tokenizer_has_the_real_layout(tmp_path):
    """The real-size builder's tokenizer: 51865 ids, Whisper's specials at openai/whisper-tiny's ids, and a
    generation config whose tables point at them."""
    from onnxpipe_bench.whisper_models import generation_config, whisper_tokenizer

    tok = whisper_tokenizer(tmp_path)
    assert len(tok) == 51865
    ids = tok.convert_tokens_to_ids(["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|su|>", "<|translate|>",
                                     "<|transcribe|>", "<|notimestamps|>", "<|0.00|>", "<|30.00|>"])
    assert ids == [50257, 50258, 50259, 50357, 50358, 50359, 50363, 50364, 51864]
    gen = generation_config(tok)
    assert len(gen["lang_to_id"]) == 99 and gen["lang_to_id"]["<|en|>"] == 50259
    assert gen["forced_decoder_ids"] == [[1, None], [2, 50359]] and gen["no_timestamps_token_id"] == 50363
    assert gen["begin_suppress_tokens"] == [tok.convert_tokens_to_ids("Ġ"), 50257]
    prompt = tok.decode([50258, 50259, 50359, 50363], skip_special_tokens=False)
    assert prompt == "<|startoftranscript|><|en|><|transcribe|><|notimestamps|>"
    assert "<|f40000|>" in tok.decode([40000])  # fillers: every id a random model produces decodes
