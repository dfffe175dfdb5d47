"""`onnxpipe embed` on the command line: the output, the progress line, exit 1 naming the bad row or the missing
extra, and a real Ctrl-C (SIGINT) mid-run that exits 130 and is resumed by the same command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from onnxpipe.cli import main
from onnxpipe.corpus.resume import sidecar


@pytest.fixture(scope="module")
def bert(models):
    return str(models.get("bert", "feature-extraction").onnx)


def _corpus(path, rows):
    words = "the quick brown fox jumps over a lazy dog while the farmer watches".split()
    path.write_text("".join(json.dumps({"text": " ".join(words[: 2 + i % 11]) + f" {i}"}) + "\n" for i in range(rows)),
                    encoding="utf-8")
    return path


def test_embed_writes_and_reports(bert, tmp_path, capsys):
    corpus = _corpus(tmp_path / "c.jsonl", 40)
    out = tmp_path / "v.npy"
    assert main(["embed", "--model", bert, str(corpus), "--output", str(out), "--chunk-size", "16", "--normalize"]) == 0
    err = capsys.readouterr().err
    assert "embed: 40/40 texts (100.0%)" in err and "texts/s" in err
    assert "40 vectors of 32 (mean pooling)" in err
    vectors = np.load(out)
    assert vectors.shape == (40, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert main(["embed", "--model", bert, str(corpus), "--output", str(out), "-q"]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err


def test_bad_row_exits_1_naming_it(bert, tmp_path, capsys):
    corpus = tmp_path / "c.csv"
    corpus.write_text("id,body\n1,fine\n2,also fine\n3,\n", encoding="utf-8")
    out = tmp_path / "v.npy"
    assert main(["embed", "--model", bert, str(corpus), "--output", str(out), "--text-column", "body", "-q"]) == 1
    err = capsys.readouterr().err
    assert "error: " in err and "row 2 (line 4) has an empty text ('') in column 'body'" in err
    assert not out.exists()


def test_parquet_without_pyarrow_exits_1_naming_the_extra(bert, tmp_path, capsys, monkeypatch):
    corpus = _corpus(tmp_path / "c.jsonl", 3)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert main(["embed", "--model", bert, str(corpus), "--output", str(tmp_path / "v.parquet"), "-q"]) == 1
    assert "pip install 'onnxpipe[corpus]'" in capsys.readouterr().err


def test_ctrl_c_exits_130_and_the_same_command_resumes(bert, tmp_path):
    rows = 30_000  # ~5 s at this tiny model's 6,500 texts/s on a quiet machine: the signal lands mid-run (3,000 did not)
    corpus = _corpus(tmp_path / "c.jsonl", rows)
    out = tmp_path / "v.npy"
    command = [sys.executable, "-m", "onnxpipe.cli", "embed", "--model", bert, str(corpus), "--output", str(out),
               "--chunk-size", "50", "--batch-size", "2"]
    # a shell's background jobs (`cmd &`, as a CI runner may start the suite) inherit SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler: give the child the default disposition, as a terminal would
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = sidecar(out) / "part-000000.npy"
    deadline = time.monotonic() + 60
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted: the finished chunks are in" in err and "run the same command again" in err
    assert not out.exists()
    # the parts progress.json records (a part written just before the signal may not be recorded yet: it is redone)
    done = json.loads((sidecar(out) / "progress.json").read_text())["parts_done"]
    assert 0 <= done < rows // 50 and len(list(sidecar(out).glob("part-*.npy"))) in (done, done + 1)
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{rows - 50 * done:,} embedded by this run" in resumed.stderr
    assert np.load(out).shape == (rows, 32) and not sidecar(out).exists()
