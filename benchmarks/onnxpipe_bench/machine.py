"""What the numbers were measured on: CPU model, cores, memory, and the versions of every engine's libraries."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import platform
from typing import Any, Optional

LIBRARIES = ("onnxpipe", "onnxruntime", "onnxruntime-gpu", "tokenizers", "numpy", "torch", "transformers", "optimum", "optimum-onnx")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb() -> Optional[float]:
    """Total memory in GiB from /proc/meminfo, or None where that file does not exist."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def version(distribution: str) -> Optional[str]:
    """The installed version of a distribution, or None (found without importing it)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores (and those this process may use), memory, OS, Python and library versions."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gb": memory_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {**{name: version(name) for name in LIBRARIES if version(name) is not None}, **_onnxruntime_in_use()},
    }


def _onnxruntime_in_use() -> dict[str, str]:
    """The version of the onnxruntime module this Python imports, which is what every engine runs: with both the
    CPU and the GPU build installed (or one on PYTHONPATH) the distribution metadata can name the other one."""
    try:
        import onnxruntime
    except ImportError:
        return {}
    return {"onnxruntime": onnxruntime.__version__}
