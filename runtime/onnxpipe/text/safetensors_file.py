"""Read the tensors of a small `.safetensors` file with numpy alone (no torch, no safetensors package).

The format is an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and byte
range, then the raw little-endian bytes. sentence-transformers stores its Dense layers this way
(`2_Dense/model.safetensors`); they are a few hundred kilobytes, so the file is read whole.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from onnxpipe.errors import CorruptModelError

# safetensors dtype -> numpy dtype (little-endian); BF16 is widened to float32 below
_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1"}
_MAX_HEADER = 100 * 1024 * 1024


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of the file at `path`, by name, as numpy arrays (bf16 as float32); CorruptModelError naming
    the file when it is not a well-formed safetensors file."""
    data = Path(path).read_bytes()

    def broken(why: str) -> CorruptModelError:
        return CorruptModelError(f"{path} is not a readable safetensors file ({why}); restore it or re-export the model.")

    if len(data) < 8:
        raise broken("shorter than its 8-byte header length")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > min(_MAX_HEADER, len(data) - 8):
        raise broken(f"header length {header_len} runs past the file's {len(data)} bytes")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise broken(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise broken("header is not a JSON object")
    body = memoryview(data)[8 + header_len :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = entry["dtype"], [int(n) for n in entry["shape"]], entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise broken(f"tensor {name!r} has no dtype / shape / data_offsets") from None
        if not 0 <= start <= end <= len(body):
            raise broken(f"tensor {name!r} lies outside the file (bytes {start}-{end} of {len(body)})")
        raw = body[start:end]
        if dtype == "BF16":  # the top 16 bits of a float32
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif dtype in _DTYPES:
            array = np.frombuffer(raw, dtype=_DTYPES[dtype])
        else:
            raise broken(f"tensor {name!r} has dtype {dtype!r}, which onnxpipe does not read")
        count = int(np.prod(shape, dtype=np.int64))
        if array.size != count:
            raise broken(f"tensor {name!r} holds {array.size} values for shape {shape}")
        tensors[name] = array.reshape(shape).astype(array.dtype.newbyteorder("="), copy=True)
    return tensors
