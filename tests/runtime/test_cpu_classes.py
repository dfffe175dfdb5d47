"""int8 on an x86 CPU without VNNI, proven on any x86 machine: the same folder checked under `qemu-x86_64 -cpu max`
(QEMU 7.2's TCG: AVX2, no AVX-512, no VNNI; its u8 x s8 products saturate in int16 as on an AVX2-only EPYC).

Numerics under emulation are the real instructions'; times are not, so nothing here is timed. On an AVX2 machine
itself the rest of the suite's int8 tests run natively on that class.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys

import pytest

QEMU = shutil.which("qemu-x86_64-static") or shutil.which("qemu-x86_64")
pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64") or QEMU is None,
    reason="needs an x86_64 machine with qemu-user (apt-get install qemu-user-static) to emulate an AVX2 CPU",
)


def _check_on_avx2(folder, **env: str) -> dict:
    """`onnxpipe check --json FOLDER` on an emulated AVX2 CPU without VNNI."""
    environ = {**os.environ, **env}
    done = subprocess.run(
        [QEMU, "-cpu", "max", sys.executable, "-m", "onnxpipe.cli", "check", "--json", str(folder)],
        capture_output=True, text=True, timeout=600, env=environ,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def folder(models):
    return models.get("bert", "feature-extraction").onnx


def test_avx2_gets_the_export_figures(folder):
    """The runtime finds that the kernels saturate, turns on onnxruntime's u8 x u8 kernels, and the int8 file gives
    the figures measured at export on any CPU class."""
    report = _check_on_avx2(folder, ONNXPIPE_CPU_CLASS="")
    assert report["cpu"]["class"] == "x86-no-vnni"
    assert report["cpu"]["session_config"] == {"session.x64quantprecision": "1"}
    assert report["passed"], report
    int8 = next(entry for entry in report["files"] if entry["dtype"] == "int8")
    # integer products are exact on both classes; only float sums differ in order (AVX2 vs AVX-512 kernels)
    assert int8["here"]["min_cosine"] == pytest.approx(int8["export"]["min_cosine"], abs=1e-4), int8
    assert int8["here"]["mean_cosine"] == pytest.approx(int8["export"]["mean_cosine"], abs=1e-4), int8


def test_without_the_setting_avx2_int8_loses_accuracy(folder):
    """Forcing the VNNI class on the AVX2 CPU (no x64quantprecision) shows what the setting prevents."""
    report = _check_on_avx2(folder, ONNXPIPE_CPU_CLASS="x86-vnni")
    int8 = next(entry for entry in report["files"] if entry["dtype"] == "int8")
    assert int8["here"]["min_cosine"] < int8["export"]["min_cosine"] - 0.01, int8
    fp32 = next(entry for entry in report["files"] if entry["dtype"] == "fp32")
    assert fp32["passed"]
