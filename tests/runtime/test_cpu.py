"""The CPU class (onnxpipe.cpu): a pure function of the architecture, the flags and onnxruntime's probe, and the
session settings that follow from it."""

from __future__ import annotations

import pytest

from onnxpipe.cpu import (
    ARM64,
    OTHER,
    X86_NO_VNNI,
    X86_VNNI,
    classify,
    detect,
    int8_kernels_saturate,
    parse_cpuinfo_flags,
    session_config,
)
from onnxpipe.errors import InvalidOptionError
from onnxpipe.session import session_options

XEON = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni\n\nprocessor\t: 1\n"
EPYC = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
GRAVITON = "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes asimddp i8mm\n"


@pytest.mark.parametrize(
    "machine, text, expected",
    [("x86_64", XEON, X86_VNNI), ("x86_64", EPYC, X86_NO_VNNI), ("AMD64", "flags: avx2 avx_vnni", X86_VNNI),
     ("x86_64", "flags: avx512f avx512bw", X86_NO_VNNI), ("x86_64", "flags: amx_int8", X86_VNNI),
     ("aarch64", GRAVITON, ARM64), ("arm64", "", ARM64), ("riscv64", "", OTHER)],
)
def test_classify_from_flags(machine, text, expected):
    assert classify(machine, parse_cpuinfo_flags(text)) == expected


def test_probe_outranks_flags_on_x86_only():
    assert classify("x86_64", {"avx512_vnni"}, saturates=True) == X86_NO_VNNI  # an emulator shows the host's flags
    assert classify("x86_64", {"avx2"}, saturates=False) == X86_VNNI
    assert classify("aarch64", set(), saturates=True) == ARM64


def test_cpuinfo_flags_of_first_processor():
    assert parse_cpuinfo_flags(XEON) == {"fpu", "sse2", "avx", "avx2", "avx512f", "avx512_vnni"}
    assert "asimddp" in parse_cpuinfo_flags(GRAVITON)
    assert parse_cpuinfo_flags("no flags here") == set()


def test_only_x86_without_vnni_changes_the_session():
    assert session_config(X86_NO_VNNI) == {"session.x64quantprecision": "1"}
    assert session_config(X86_VNNI) == session_config(ARM64) == session_config(OTHER) == {}
    with pytest.raises(InvalidOptionError, match="x86-vnni"):
        session_config("avx2")


def test_detect_uses_the_probe_on_x86_and_reports_flags():
    info = detect(environ={}, cpuinfo=EPYC, machine="x86_64", probe=lambda: True)
    assert (info.cpu_class, info.flags, info.source) == (X86_NO_VNNI, ("avx2",), "onnxruntime int8 probe")
    assert "session.x64quantprecision=1" in info.describe()
    assert detect(environ={}, cpuinfo=XEON, machine="x86_64", probe=lambda: False).cpu_class == X86_VNNI
    arm = detect(environ={}, cpuinfo=GRAVITON, machine="aarch64", probe=lambda: pytest.fail("no probe on ARM"))
    assert (arm.cpu_class, arm.source) == (ARM64, "/proc/cpuinfo")


def test_an_explicit_class_wins_and_a_wrong_one_is_named():
    forced = detect(environ={"ONNXPIPE_CPU_CLASS": "x86-no-vnni"}, cpuinfo=XEON, machine="x86_64", probe=lambda: False)
    assert (forced.cpu_class, forced.source) == (X86_NO_VNNI, "ONNXPIPE_CPU_CLASS")
    with pytest.raises(InvalidOptionError, match="ONNXPIPE_CPU_CLASS='avx2'.*x86-no-vnni"):
        detect(environ={"ONNXPIPE_CPU_CLASS": "avx2"}, cpuinfo=XEON, machine="x86_64")


def test_session_options_carry_the_class_settings():
    slow = session_options(cpu=detect(environ={}, cpuinfo=EPYC, machine="x86_64", probe=lambda: True))
    assert slow.get_session_config_entry("session.x64quantprecision") == "1"
    fast = session_options(cpu=detect(environ={}, cpuinfo=XEON, machine="x86_64", probe=lambda: False))
    with pytest.raises(RuntimeError):  # no such entry: onnxruntime's defaults
        fast.get_session_config_entry("session.x64quantprecision")


def test_the_probe_agrees_with_this_machines_flags():
    """onnxruntime's x86 kernels saturate exactly where the CPU has no VNNI (checked on an AVX-512 VNNI Xeon and,
    under qemu -cpu max, on an AVX2 machine: tests/test_cpu_classes.py)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the probe runs on x86 only")
    flags = parse_cpuinfo_flags(open("/proc/cpuinfo").read())
    assert int8_kernels_saturate() == (classify("x86_64", flags) == X86_NO_VNNI)
