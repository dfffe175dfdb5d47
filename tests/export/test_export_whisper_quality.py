"""Whisper export quality (issue 16): the q4 variant (4-bit decoder, 8-bit encoder), word error rates on the
packaged espeak-ng clips in the manifest and the summary, stored references that `onnxpipe check` reruns torch-free,
and cross-attention outputs in every decoder. One export (fp32 + q4) of the session's tiny Whisper.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from support import whisper_checkpoints as wc

from onnxpipe import pipeline
from onnxpipe.check import check_folder
from onnxpipe.check_report import format_report
from onnxpipe.errors import IntegrityError, MissingModelFileError
from onnxpipe.tasks.whisper.check import MAX_ADDED_WER, added_wer_warning, decode_options, speech_figures

TASK = "automatic-speech-recognition"


@pytest.fixture(scope="module")
def q4_export(models, tmp_path_factory):
    """(folder, manifest, summary text) of an fp32 + q4 export of the tiny Whisper checkpoint."""
    from onnxpipe_export import export
    from onnxpipe_export.summary import format_summary

    checkpoint = models._once("whisper-tiny", TASK, wc.build_whisper).checkpoint
    out = tmp_path_factory.mktemp("whisper-q4") / "onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # q4 on a d_model-48 random model changes transcripts: warned, expected
        result = export(str(checkpoint), task=TASK, output=str(out), dtype=["fp32", "q4"], quiet=True)
    return out, result.manifest, format_summary(str(out), result.manifest, result.warnings, result.seconds)


def test_q4_is_a_4bit_decoder_and_an_8bit_encoder(q4_export):
    import onnx

    out, manifest, _ = q4_export
    files = manifest["files"]
    assert manifest["q4_components"] == {"encoder": "int8", "decoder": "q4"}
    decoder = files["decoder_model_merged_q4.onnx"]["quantization"]
    assert decoder["bits"] == 4 and decoder["algorithm"] == "rtn-mixed"  # the default q4 recipe
    assert files["encoder_model_q4.onnx"]["quantization"]["bits"] == 8
    # rtn-mixed keeps the first and last decoder layers (here: both), the head and v/down projections at 8 bits
    assert decoder["eight_bit_matmuls"] >= 1
    for name in ("decoder_model_merged.onnx", "decoder_model_merged_q4.onnx"):
        outputs = [o.name for o in onnx.load(str(out / name), load_external_data=False).graph.output]
        assert outputs[-2:] == ["cross_attentions.0", "cross_attentions.1"], name
    assert manifest["word_timestamps"]["alignment_heads"] == [[0, 1], [1, 0], [1, 1]]


def test_manifest_carries_word_error_rates(q4_export):
    out, manifest, summary = q4_export
    speech = manifest["validation"]["speech"]
    assert len(speech["reference_texts"]) == len(speech["torch_transcripts"]) == 3
    assert speech["options"] == {"num_beams": 1, "max_new_tokens": 96, "language": "en", "task": "transcribe"}
    reference = manifest["validation"]["references"]
    assert (out / reference["file"]).is_file() and len(reference["sha256"]) == 64
    fp32 = manifest["files"]["decoder_model_merged.onnx"]["validation"]["speech"]
    q4 = manifest["files"]["decoder_model_merged_q4.onnx"]["validation"]["speech"]
    # fp32 ONNX transcribes exactly as torch does; the random tiny model is nowhere near the texts
    assert fp32["wer_vs_torch"] == 0.0 and fp32["wer_vs_fp32"] == 0.0 and fp32["identical_to_torch"] == 1.0
    assert fp32["transcripts"] == speech["torch_transcripts"] == speech["fp32_transcripts"]
    assert fp32["wer_vs_text"] >= 0.5
    assert q4["acceptance"]["figure"] == "wer_vs_torch" and q4["acceptance"]["at_most"] > q4["wer_vs_torch"]
    assert len(q4["transcripts"]) == 3
    assert "speech WER: " in summary and summary.count("vs reference texts") == 2


def test_onnxpipe_check_reruns_the_word_error_rates(q4_export, tmp_path):
    out, manifest, _ = q4_export
    report = check_folder(out)
    assert report.passed, format_report(report)
    rows = {f.dtype: f for f in report.files}
    assert set(rows) == {"fp32", "q4"} and rows["fp32"].here["wer_vs_torch"] == 0.0
    assert rows["q4"].here["wer_vs_torch"] == pytest.approx(rows["q4"].exported["wer_vs_torch"])
    assert "wer_vs_torch" in format_report(report)

    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    with np.load(tampered / "validation.npz") as data:
        arrays = dict(data)
    arrays["clip0"] = arrays["clip0"][::-1].copy()
    np.savez_compressed(tampered / "validation.npz", **arrays)
    with pytest.raises(IntegrityError, match="validation.npz"):
        check_folder(tampered)

    bare = tmp_path / "bare"  # as exported with --no-validate
    shutil.copytree(out, bare)
    stripped = {**manifest, "validation": None}
    (bare / "onnxpipe.json").write_text(json.dumps(stripped), encoding="utf-8")
    with pytest.raises(MissingModelFileError, match="stores no speech references"):
        check_folder(bare)


def test_word_timestamps_run_on_the_q4_files(q4_export):
    out, _, _ = q4_export
    result = pipeline(TASK, model=str(out), dtype="q4")(wc.clip(3.0, "speechlike", seed=1), return_timestamps="word")
    times = [c["timestamp"] for c in result["chunks"]]
    assert times and all(start <= end for start, end in times)
    assert [s for s, _ in times] == sorted(s for s, _ in times)


def test_figures_and_warning_rule():
    figures = speech_figures(["a b c d"], ["a b c d"], ["a b x d"], ["a b c d e"])
    assert figures["wer_vs_fp32"] == 0.0 and figures["wer_vs_torch"] == 0.25 and figures["wer_vs_text"] == 0.2
    fp32 = {"wer_vs_text": 0.10}
    assert added_wer_warning("x.onnx", {"wer_vs_text": 0.10 + MAX_ADDED_WER, "wer_vs_fp32": 0.0}, fp32) is None
    warning = added_wer_warning("x.onnx", {"wer_vs_text": 0.15, "wer_vs_fp32": 0.05}, fp32)
    assert warning.startswith("x.onnx: word error rate 15.0%") and "+5.0 points" in warning


def test_decode_options_force_english_only_where_the_model_has_it():
    multilingual = {"lang_to_id": {"<|en|>": 1, "<|de|>": 2}, "task_to_id": {"transcribe": 3}, "is_multilingual": True}
    assert decode_options(multilingual) == {"num_beams": 1, "max_new_tokens": 96, "language": "en", "task": "transcribe"}
    assert decode_options({"is_multilingual": False, "lang_to_id": {"<|en|>": 1}}) == {"num_beams": 1, "max_new_tokens": 96}
    assert decode_options({}) == {"num_beams": 1, "max_new_tokens": 96}


def test_q4_method_and_block_size_reach_whisper_files(models, tmp_path):
    """--q4-method picks the decoder's 4-bit recipe and --block-size the blocks of both weight-only files; GPTQ
    (decoder-only calibration) is refused for Whisper with the methods it can take."""
    from onnxpipe_export import export
    from onnxpipe_export.errors import ExportOptionError

    checkpoint = models._once("whisper-tiny", TASK, wc.build_whisper).checkpoint
    out = tmp_path / "rtn16"
    manifest = export(str(checkpoint), task=TASK, output=str(out), dtype=["fp32", "q4"], quiet=True, validate=False,
                      q4_method="rtn", block_size=16).manifest
    decoder = manifest["files"]["decoder_model_merged_q4.onnx"]["quantization"]
    encoder = manifest["files"]["encoder_model_q4.onnx"]["quantization"]
    assert (decoder["algorithm"], decoder["bits"], decoder["block_size"]) == ("rtn", 4, 16)
    assert "eight_bit" not in decoder and (encoder["bits"], encoder["block_size"]) == (8, 16)
    with pytest.raises(ExportOptionError, match="calibrates decoder-only models"):
        export(str(checkpoint), task=TASK, output=str(tmp_path / "gptq"), dtype=["q4"], quiet=True, q4_method="gptq")
    with pytest.raises(ExportOptionError, match="no q4 file is asked for"):
        export(str(checkpoint), task=TASK, output=str(tmp_path / "int8"), dtype=["int8"], quiet=True, q4_method="hqq")
