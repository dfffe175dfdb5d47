"""`onnxpipe check` on generation folders: every variant's teacher-forced quality re-measured from quality.npz,
without torch, next to the export's figures."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from onnxpipe import cli
from onnxpipe.check import CHECKERS, check_folder
from onnxpipe.errors import CorruptModelError, IntegrityError, MissingModelFileError
from onnxpipe.quality import QUALITY_NAME, load_quality_references, save_quality_references


@pytest.fixture(scope="module")
def llama(generation_models):
    """Tiny Llama (chat template) exported with fp32, int8 and q4 (shared with tests/export/test_generation_quality.py)."""
    return generation_models.with_dtypes("llama", ("fp32", "int8", "q4"), q4_method="rtn")  # shared with test_generation_quality


def _copy(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    return copy


def _edit_manifest(folder, edit):
    manifest = json.loads((folder / "onnxpipe.json").read_text())
    edit(manifest)
    (folder / "onnxpipe.json").write_text(json.dumps(manifest))


def test_check_reproduces_the_export_figures(llama, capsys):
    report = check_folder(llama)
    assert report.kind == "generation" and report.passed
    assert [(f.name, f.bound["figure"]) for f in report.files] == [
        (name, figure) for name in ("model.onnx", "model_quantized.onnx", "model_q4.onnx")
        for figure in ("top1_agreement", "nll_increase")
    ]
    for row in report.files:  # same machine, same files: the same figures, per text too
        for key in ("top1_agreement", "nll", "nll_torch", "nll_increase"):
            assert row.here[key] == pytest.approx(row.exported[key], rel=1e-6, abs=1e-9)
        assert row.here["chat"]["top1_agreement"] == row.exported["chat"]["top1_agreement"]
    assert report.measured_on == json.loads((llama / "onnxpipe.json").read_text())["quality"]["measured_on"]
    assert cli.main(["check", str(llama)]) == 0
    out = capsys.readouterr().out
    assert "model_q4.onnx" in out and "nll_increase" in out and "all files meet their bounds" in out


def test_check_json_and_a_missed_bound(llama, tmp_path, capsys):
    folder = _copy(llama, tmp_path)

    def stricter(manifest):
        manifest["files"]["model_q4.onnx"]["quality"]["acceptance"][0]["at_least"] = 0.99

    _edit_manifest(folder, stricter)
    assert cli.main(["check", str(folder), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "generation" and report["passed"] is False
    assert [(r["file"], r["bound"]["figure"], r["passed"]) for r in report["files"] if not r["passed"]] == [
        ("model_q4.onnx", "top1_agreement", False)
    ]
    q4 = next(r for r in report["files"] if r["file"] == "model_q4.onnx")
    assert set(q4["here"]) >= {"text", "chat", "tokens", "nll", "nll_torch", "nll_increase", "top1_agreement"}


def test_encoder_decoder_folders_are_checked(generation_models):
    report = check_folder(generation_models.get("bart").onnx)
    assert report.passed and {f.name for f in report.files} == {"decoder_model_merged.onnx", "decoder_model_merged_quantized.onnx"}


def test_tampered_references_report_the_sha256_mismatch(llama, tmp_path):
    folder = _copy(llama, tmp_path)
    text, chat = load_quality_references(folder / QUALITY_NAME, ["text", "chat"])
    save_quality_references(folder / QUALITY_NAME, [text, type(chat)(chat.name, chat.input_ids, None, chat.nll * 0, chat.top1)])
    with pytest.raises(IntegrityError, match="quality.npz does not match onnxpipe.json.*generation quality references were changed"):
        check_folder(folder)
    (folder / QUALITY_NAME).unlink()
    with pytest.raises(MissingModelFileError, match="quality.npz is listed in onnxpipe.json but missing"):
        check_folder(folder)


def test_references_that_disagree_with_the_manifest_are_refused(llama, tmp_path):
    path = tmp_path / QUALITY_NAME
    shutil.copy(llama / QUALITY_NAME, path)
    with pytest.raises(CorruptModelError, match="holds 2 texts but onnxpipe.json names 1"):
        load_quality_references(path, ["text"])
    text, _ = load_quality_references(path, ["text", "chat"])
    np.savez_compressed(path, **{"batch0/input_ids": text.input_ids, "reference0": np.zeros((3, 2), np.float32)})
    with pytest.raises(CorruptModelError, match="text 'text' has ids"):
        load_quality_references(path, ["text"])


def test_a_folder_without_quality_references_says_how_to_re_export(llama, tmp_path):
    folder = _copy(llama, tmp_path)
    _edit_manifest(folder, lambda manifest: manifest.update(quality=None))
    with pytest.raises(MissingModelFileError, match=r"no stored generation quality references.*onnxpipe export .* --task text-generation"):
        check_folder(folder)


def test_checkers_table_dispatches_on_the_manifest():
    kinds = [kind for kind, belongs, _ in CHECKERS if belongs({"task": "summarization"})]
    assert kinds[0] == "generation" and CHECKERS[-1][0] == "graph" and CHECKERS[-1][1]({"task": "fill-mask"})
