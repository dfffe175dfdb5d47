"""A small reader of WAV (RIFF) files: integer PCM of 8/16/24/32 bits and IEEE float of 32/64 bits, plain or
WAVE_FORMAT_EXTENSIBLE, any channel count. The standard `wave` module reads only integer PCM."""

from __future__ import annotations

import struct

import numpy as np

from onnxpipe.errors import InvalidInputError

PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE


def is_wav(data: bytes) -> bool:
    """Whether the bytes start like a little-endian RIFF/WAVE file."""
    return data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def _chunks(data: bytes):
    offset = 12
    while offset + 8 <= len(data):
        name, size = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        yield name, data[offset + 8 : offset + 8 + size]
        offset += 8 + size + (size & 1)  # chunks are word-aligned


def read_wav(data: bytes, what: str = "The WAV data") -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], sampling rate) of a WAV file; channels are averaged."""
    fmt, payload = None, None
    for name, body in _chunks(data):
        if name == b"fmt " and len(body) >= 16:
            fmt = body
        elif name == b"data":
            payload = body
            break
    if fmt is None or payload is None:
        raise InvalidInputError(f"{what} is a damaged WAV file (no {'fmt' if fmt is None else 'data'} chunk); re-export it.")
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # the sub-format GUID starts with the real format tag
    width = block_align // channels if channels else 0  # container bytes per sample (samples are left-justified)
    if channels < 1 or rate < 1 or width < 1:
        raise InvalidInputError(f"{what} declares {channels} channel(s) at {rate} Hz with {bits}-bit samples; re-export it.")
    usable = len(payload) - len(payload) % (width * channels)
    raw = payload[:usable]
    if tag == FLOAT and width in (4, 8):
        samples = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float64)
    elif tag == PCM and width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif tag == PCM and width in (2, 4):
        samples = np.frombuffer(raw, dtype="<i2" if width == 2 else "<i4").astype(np.float64) / float(1 << (8 * width - 1))
    elif tag == PCM and width == 3:
        triples = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        pcm = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        samples = np.where(pcm >= 1 << 23, pcm - (1 << 24), pcm).astype(np.float64) / float(1 << 23)
    else:
        raise InvalidInputError(
            f"{what} holds format {tag} with {bits}-bit samples; WAV files with integer PCM (8/16/24/32 bits) or "
            "float (32/64 bits) samples are read. Convert it, e.g. to 16-bit PCM."
        )
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples.astype(np.float32), rate
