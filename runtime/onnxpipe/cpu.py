"""The CPU class this process runs on, and the onnxruntime session settings that keep int8 right on it.

onnxruntime's x86 int8 kernels multiply u8 activations by s8 weights. With VNNI (AVX-512 VNNI, AVX-VNNI, AMX) the
products are summed in int32. Without it (AVX2, AVX-512F alone) pairs of products are summed in int16 with
saturation, and the same int8 file gives other, worse numbers (onnxruntime issues #5849, #6004, #14642). The session
option `session.x64quantprecision=1` makes onnxruntime use its u8 x u8 kernels there instead, which sum in int32:
same numbers as on VNNI, somewhat slower. ARM64 kernels sum in int32 on every core.

On x86 the class is decided by asking onnxruntime itself: a 173-byte graph multiplies u8 255 by s8 127 along 64
products, and a result below 64 x 255 x 127 means the kernels saturate. The flags of /proc/cpuinfo are reported
beside it (an emulator or a hypervisor can show flags the kernels do not get). `classify` is pure so every class is
testable on any machine; `ONNXPIPE_CPU_CLASS` overrides both.
"""

from __future__ import annotations

import base64
import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Optional

from onnxpipe.errors import InvalidOptionError

X86_VNNI = "x86-vnni"
X86_NO_VNNI = "x86-no-vnni"
ARM64 = "arm64"
OTHER = "other"
CPU_CLASSES: tuple[str, ...] = (X86_VNNI, X86_NO_VNNI, ARM64, OTHER)
OVERRIDE_VARIABLE = "ONNXPIPE_CPU_CLASS"

# /proc/cpuinfo flags that give x86 int8 dot products accumulated in int32
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
# flags worth printing next to the class: what the int8 kernels can use
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
# MatMulInteger(a: u8[1, 64], w: s8[64, 1] = 127) -> y: int32[1, 1], opset 13 (made with onnx.helper)
_SATURATION_PROBE = (
    "CAcSCG9ubnhwaXBlOpgBChgKAWEKAXcSAXkiDU1hdE11bEludGVnZXISBXByb2JlKksIQAgBEANCAXdKQH9/f39/f39/f39/f39/"
    "f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39aEwoBYRIOCgwIAhIICgIIAQoCCEBiEwoB"
    "eRIOCgwIBhIICgIIAQoCCAFCBAoAEA0="
)
_PROBE_EXACT = 64 * 255 * 127
X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})
ARM64_MACHINES = frozenset({"aarch64", "arm64", "armv8l"})


@dataclass(frozen=True)
class CpuInfo:
    """The CPU class, the int8-relevant flags seen, and where the class came from (cpuinfo, override, platform)."""

    cpu_class: str
    flags: tuple[str, ...]
    source: str

    def session_config(self) -> dict[str, str]:
        """onnxruntime session config entries this class needs for right int8 numerics."""
        return session_config(self.cpu_class)

    def describe(self) -> str:
        """One line for logs and `onnxpipe info`: class, flags, and what the runtime sets for it."""
        config = self.session_config()
        chosen = ", ".join(f"{k}={v}" for k, v in config.items()) or "onnxruntime defaults"
        flags = " ".join(self.flags) or "none of " + " ".join(REPORTED_FLAGS)
        return f"{self.cpu_class} (flags: {flags}; from {self.source}); int8 sessions: {chosen}"

    def manifest_entry(self) -> dict[str, object]:
        """What an export records next to figures measured on this CPU."""
        return {"class": self.cpu_class, "flags": list(self.flags), "machine": platform.machine()}


def classify(machine: str, flags: Iterable[str], saturates: Optional[bool] = None) -> str:
    """The CPU class of an architecture name (platform.machine()), its /proc/cpuinfo flags and, on x86, whether
    onnxruntime's int8 kernels saturated on the probe (None: not probed, the flags decide)."""
    arch = machine.strip().lower()
    if arch in ARM64_MACHINES:
        return ARM64
    if arch in X86_MACHINES:
        if saturates is not None:
            return X86_NO_VNNI if saturates else X86_VNNI
        return X86_VNNI if VNNI_FLAGS & {f.lower() for f in flags} else X86_NO_VNNI
    return OTHER


def int8_kernels_saturate() -> bool:
    """Run the probe graph on onnxruntime's CPU provider: True when u8 x s8 products were summed with saturation."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(base64.b64decode(_SATURATION_PROBE), options, providers=["CPUExecutionProvider"])
    result = session.run(None, {"a": np.full((1, 64), 255, np.uint8)})[0]
    return int(result.reshape(-1)[0]) != _PROBE_EXACT


def session_config(cpu_class: str) -> dict[str, str]:
    """Session config entries for a CPU class: u8 x u8 int8 kernels on x86 without VNNI (no int16 saturation)."""
    if cpu_class not in CPU_CLASSES:
        raise InvalidOptionError(f"Unknown CPU class {cpu_class!r}; choose one of {', '.join(CPU_CLASSES)}.")
    return {"session.x64quantprecision": "1"} if cpu_class == X86_NO_VNNI else {}


def parse_cpuinfo_flags(text: str) -> set[str]:
    """The feature flags of the first processor in /proc/cpuinfo text ('flags' on x86, 'Features' on ARM)."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def _read_cpuinfo(path: Path = Path("/proc/cpuinfo")) -> Optional[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def detect(
    environ: Optional[dict[str, str]] = None,
    cpuinfo: Optional[str] = None,
    machine: Optional[str] = None,
    probe: Optional[Callable[[], bool]] = None,
) -> CpuInfo:
    """The CPU class of this machine: `ONNXPIPE_CPU_CLASS` when set (checked), else on x86 onnxruntime's answer to
    the saturation probe (`probe`, default int8_kernels_saturate), else the architecture."""
    env = os.environ if environ is None else environ
    machine = platform.machine() if machine is None else machine
    text = _read_cpuinfo() if cpuinfo is None else cpuinfo
    flags = parse_cpuinfo_flags(text) if text else set()
    reported = tuple(f for f in REPORTED_FLAGS if f in flags)
    override = env.get(OVERRIDE_VARIABLE, "").strip()
    if override:
        if override not in CPU_CLASSES:
            raise InvalidOptionError(
                f"{OVERRIDE_VARIABLE}={override!r} is not a CPU class; use one of {', '.join(CPU_CLASSES)} or unset it."
            )
        return CpuInfo(override, reported, OVERRIDE_VARIABLE)
    if machine.strip().lower() in X86_MACHINES:
        saturates = (probe or int8_kernels_saturate)()
        return CpuInfo(classify(machine, flags, saturates), reported, "onnxruntime int8 probe")
    return CpuInfo(classify(machine, flags), reported, "/proc/cpuinfo" if text else "platform")


@lru_cache(maxsize=1)
def this_cpu() -> CpuInfo:
    """`detect()` once per process (the environment override is read at the first call)."""
    return detect()
