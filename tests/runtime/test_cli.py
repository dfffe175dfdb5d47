"""The `onnxpipe` command: tasks, run (JSON out), export (through the export stage's own process)."""

from __future__ import annotations

import json
import subprocess
import sys

from support.checkpoints import VARIED_TEXTS
from support.parity import assert_same

from onnxpipe import cli, pipeline


def _run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "onnxpipe.cli", *args], input=stdin, capture_output=True, text=True, timeout=300
    )


def test_tasks_lists_tasks_and_aliases(capsys):
    assert cli.main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "text-classification  (aliases: sentiment-analysis)" in out and "feature-extraction" in out


def test_run_prints_pipeline_json(models, capsys):
    folder = models.get("bert", "text-classification").onnx
    texts = list(VARIED_TEXTS[:3])
    assert cli.main(["run", "sentiment-analysis", *texts, "--model", str(folder), "--dtype", "fp32", "-o", "top_k=2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = pipeline("text-classification", model=str(folder), dtype="fp32")(texts, top_k=2)
    assert_same(printed, expected)


def test_run_reads_stdin_and_json_pairs(models):
    folder = models.get("roberta", "text-classification").onnx
    pair = {"text": "The food was great.", "text_pair": "I would come back."}
    done = _run_cli("run", "text-classification", "--model", str(folder), "--json-input", "--compact", stdin=json.dumps(pair) + "\n")
    assert done.returncode == 0, done.stderr
    assert_same(json.loads(done.stdout), pipeline("text-classification", model=str(folder))(pair))


def test_run_error_is_one_clear_line(tmp_path, capsys):
    assert cli.main(["run", "text-classification", "hi", "--model", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Model folder") and "Traceback" not in err


def test_export_without_the_export_extra_names_the_fix(monkeypatch, capsys):
    monkeypatch.setattr(cli, "missing_export_modules", lambda: ["torch", "optimum.exporters.onnx"])
    assert cli.main(["export", "some/model", "--task", "text-classification", "--output", "x"]) == 1
    assert "pip install 'onnxpipe[export]'" in capsys.readouterr().err


def test_export_then_run(tmp_path):
    from support import checkpoints

    checkpoint = checkpoints.build_checkpoint("distilbert", "sequence-classification", tmp_path / "ckpt")
    out = tmp_path / "onnx"
    done = _run_cli("export", str(checkpoint), "--task", "sentiment-analysis", "--dtype", "int8", "--output", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "onnxpipe.json").read_text())
    assert manifest["task"] == "text-classification" and manifest["default_dtype"] == "int8"
    assert (out / "model_quantized.onnx").is_file() and (out / "model.onnx").is_file()
    ran = _run_cli("run", "sentiment-analysis", "I love this", "I hate this", "--model", str(out))
    assert ran.returncode == 0, ran.stderr
    results = json.loads(ran.stdout)
    assert len(results) == 2 and {r["label"] for r in results} <= {"NEGATIVE", "NEUTRAL", "POSITIVE"}


def test_export_usage_error_exit_code(tmp_path):
    done = _run_cli("export", str(tmp_path), "--output", str(tmp_path / "o"))  # no --task
    assert done.returncode == 2 and "--task" in done.stderr
