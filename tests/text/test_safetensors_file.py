"""onnxpipe.text.safetensors_file reads what the safetensors package writes (f32, f16, bf16, ints), without it, and
refuses broken files by name."""

from __future__ import annotations

import numpy as np
import pytest

from onnxpipe.errors import CorruptModelError
from onnxpipe.text.safetensors_file import read_safetensors


def test_reads_what_safetensors_writes(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((5, 3)).astype(np.float32)
    tensors = {
        "linear.weight": torch.from_numpy(weight),
        "half": torch.from_numpy(weight).half(),
        "brain": torch.from_numpy(weight).bfloat16(),
        "ids": torch.arange(7, dtype=torch.int64),
        "scalar": torch.tensor(2.5),
    }
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    read = read_safetensors(tmp_path / "model.safetensors")
    assert set(read) == set(tensors)
    np.testing.assert_array_equal(read["linear.weight"], weight)
    np.testing.assert_array_equal(read["half"], weight.astype(np.float16))
    assert read["brain"].dtype == np.float32
    np.testing.assert_array_equal(read["brain"], tensors["brain"].float().numpy())
    np.testing.assert_array_equal(read["ids"], np.arange(7))
    assert read["scalar"].shape == () and float(read["scalar"]) == 2.5
    read["linear.weight"][0, 0] = 1.0  # writable copies, not views of the file's bytes


@pytest.mark.parametrize(("data", "message"), [
    (b"\x01\x02", "shorter than"),
    ((10**9).to_bytes(8, "little") + b"{}", "runs past"),
    ((4).to_bytes(8, "little") + b"nope", "not JSON"),
    ((2).to_bytes(8, "little") + b"[]", "not a JSON object"),
    ((60).to_bytes(8, "little") + b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'[:60], "not JSON"),
])
def test_broken_files_are_named(tmp_path, data, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(CorruptModelError, match=message):
        read_safetensors(path)


def test_offsets_outside_the_file_are_refused(tmp_path):
    header = b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'
    path = tmp_path / "short.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\x00" * 8)
    with pytest.raises(CorruptModelError, match="outside the file"):
        read_safetensors(path)
    header = b'{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}'
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\x00" * 16)
    with pytest.raises(CorruptModelError, match="holds 4 values for shape"):
        read_safetensors(path)
    header = b'{"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}'
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\x00" * 8)
    with pytest.raises(CorruptModelError, match="C64"):
        read_safetensors(path)
