"""`onnxpipe check FOLDER`: every file of an export folder re-measured on its stored torch references, without torch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from onnxpipe import cli
from onnxpipe.check import check_folder
from onnxpipe.cpu import this_cpu
from onnxpipe.errors import IntegrityError, MissingModelFileError
from onnxpipe.validation import REFERENCES_NAME, load_references


@pytest.fixture(scope="module")
def exported(models):
    return models.get("bert", "feature-extraction")


def _copy(exported, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(exported.onnx, folder)
    return folder


def _manifest(folder):
    return json.loads((folder / "onnxpipe.json").read_text())


def test_export_stores_references_and_the_cpu_it_measured_on(exported):
    manifest = _manifest(exported.onnx)
    validation = manifest["validation"]
    assert validation["references"]["file"] == REFERENCES_NAME
    assert validation["measured_on"]["class"] == this_cpu().cpu_class
    assert validation["comparison"] == {"outputs": ["last_hidden_state"], "token_level": True, "metric": "cosine", "class_axis": -1}
    batches, reference = load_references(exported.onnx / REFERENCES_NAME)
    assert len(batches) == len(reference) == 1 and reference[0].shape[:2] == batches[0]["input_ids"].shape
    int8 = manifest["files"]["model_quantized.onnx"]["validation"]
    assert int8["acceptance"] == {"figure": "min_cosine", "at_least": round(int8["min_cosine"] - 0.005, 6)}
    fp32 = manifest["files"]["model.onnx"]["validation"]
    assert fp32["acceptance"] == {"figure": "max_abs_diff", "at_most": fp32["tolerance"]}


def test_check_reproduces_the_export_figures_here(exported, capsys):
    report = check_folder(exported.onnx)
    assert report.passed and [f.name for f in report.files] == ["model.onnx", "model_quantized.onnx"]
    for file in report.files:  # same machine, same files: the same figures
        key = file.bound["figure"]
        assert file.here[key] == pytest.approx(file.exported[key], rel=1e-5, abs=1e-7)
    assert cli.main(["check", str(exported.onnx)]) == 0
    out = capsys.readouterr().out
    assert this_cpu().cpu_class in out and "model_quantized.onnx" in out and "all files meet their bounds" in out


def test_a_file_that_misses_its_bound_fails_the_command(exported, tmp_path, capsys):
    folder = _copy(exported, tmp_path)
    manifest = _manifest(folder)
    manifest["files"]["model_quantized.onnx"]["validation"]["acceptance"]["at_least"] = 1.5
    (folder / "onnxpipe.json").write_text(json.dumps(manifest))
    assert cli.main(["check", str(folder), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False
    assert [f["passed"] for f in report["files"]] == [True, False]


def test_tampered_references_report_the_sha256_mismatch(exported, tmp_path):
    folder = _copy(exported, tmp_path)
    batches, reference = load_references(folder / REFERENCES_NAME)
    np.savez_compressed(folder / REFERENCES_NAME, **{"reference0": reference[0] * 0, **{f"batch0/{k}": v for k, v in batches[0].items()}})
    with pytest.raises(IntegrityError, match="validation.npz does not match onnxpipe.json.*sha256"):
        check_folder(folder)


def test_a_folder_without_references_says_how_to_re_export(exported, tmp_path, capsys):
    folder = _copy(exported, tmp_path)
    manifest = _manifest(folder)
    del manifest["validation"]["references"]
    (folder / "onnxpipe.json").write_text(json.dumps(manifest))
    with pytest.raises(MissingModelFileError, match=r"no stored validation references.*onnxpipe export .* --task feature-extraction"):
        check_folder(folder)
    manifest["validation"] = None  # --no-validate
    (folder / "onnxpipe.json").write_text(json.dumps(manifest))
    with pytest.raises(MissingModelFileError, match=r"no validation at all.*re-export without --no-validate"):
        check_folder(folder)
    (folder / "onnxpipe.json").unlink()
    assert cli.main(["check", str(folder)]) == 1
    assert "needs a folder written by `onnxpipe export`" in capsys.readouterr().err


def test_info_prints_the_cpu_class(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"CPU class: {this_cpu().cpu_class}" in out and "onnxruntime" in out
