"""The dtypes the export stage writes, checked once, and how each variant is quantized."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from .errors import UnsupportedDtypeError

WRITABLE_DTYPES: tuple[str, ...] = ("fp32", "int8", "fp16")
# generation tasks (generative.py) also write 4-bit weight-only MatMulNBits files, and their int8 is 8-bit MatMulNBits (weight_only.py)
GENERATION_DTYPES: tuple[str, ...] = ("fp32", "int8", "fp16", "q4")
NOT_YET: dict[str, str] = {
    "q4": "4-bit weight-only quantization (q4) is not implemented for encoder tasks yet (generation tasks write it)",
}

# dtype -> the manifest's `quantization` entry for its file
QUANTIZATION: dict[str, Optional[dict[str, Any]]] = {
    "fp32": None,
    "int8": {
        "method": "dynamic", "weight_type": "QInt8", "per_channel": True, "weight_symmetric": False,
        "activations": "per token for weight MatMuls, per tensor for fused attention",
        "x86_without_vnni": "session.x64quantprecision=1 (set by the runtime)",
    },
    "fp16": {"method": "fp16", "keep_io_types": True},
}


def parse_dtypes(dtype: Union[str, Sequence[str]], allowed: Sequence[str] = WRITABLE_DTYPES) -> list[str]:
    """Check a dtype or list of dtypes against `allowed`; return them lower-cased, in order, without repeats."""
    names = [dtype] if isinstance(dtype, str) else list(dtype)
    if not names:
        raise UnsupportedDtypeError(f"dtype is empty; choose one or more of {', '.join(WRITABLE_DTYPES)}.")
    result: list[str] = []
    for name in names:
        key = str(name).strip().lower()
        if key in NOT_YET and key not in allowed:
            raise UnsupportedDtypeError(
                f"dtype {name!r}: {NOT_YET[key]}; choose one or more of {', '.join(allowed)}."
            )
        if key not in allowed:
            raise UnsupportedDtypeError(f"Unknown dtype {name!r}; choose one or more of {', '.join(allowed)}.")
        if key not in result:
            result.append(key)
    return result
