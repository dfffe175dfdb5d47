"""Device parsing and provider selection are pure functions: the CUDA paths are tested here without a GPU."""

import warnings

import numpy as np
import onnxruntime as ort
import pytest

from onnxpipe.errors import CorruptModelError, DeviceNotAvailableError, InvalidInputError, InvalidOptionError
from onnxpipe.session import CPU, CUDA, OnnxSession, parse_device, providers_for_device


@pytest.mark.parametrize(
    "device, expected",
    [("cpu", ("cpu", 0)), ("CUDA", ("cuda", 0)), ("cuda:1", ("cuda", 1)), (-1, ("cpu", 0)), (0, ("cuda", 0)), (2, ("cuda", 2)), (None, ("cpu", 0))],
)
def test_parse_device(device, expected):
    assert parse_device(device) == expected


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu", "", 1.5, True])
def test_parse_device_rejects_unknown_devices_and_lists_valid_ones(device):
    with pytest.raises(InvalidOptionError, match="cpu.*cuda"):
        parse_device(device)


def test_cpu_uses_only_the_cpu_provider():
    assert providers_for_device("cpu", [CUDA, CPU]) == [CPU]


def test_cuda_maps_to_cuda_then_cpu_with_device_id():
    assert providers_for_device("cuda:3", [CUDA, CPU]) == [(CUDA, {"device_id": 3, "use_tf32": 0}), CPU]
    assert providers_for_device(0, [CUDA, CPU]) == [(CUDA, {"device_id": 0, "use_tf32": 0}), CPU]


def test_cuda_without_cuda_provider_names_available_providers_and_fix():
    with pytest.raises(DeviceNotAvailableError) as info:
        providers_for_device("cuda", [CPU])
    message = str(info.value)
    assert CPU in message and "onnxruntime-gpu" in message and "device='cpu'" in message


def _identity_model(path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    y = helper.make_tensor_value_info("out", TensorProto.INT64, ["b", "s"])
    graph = helper.make_graph([helper.make_node("Identity", ["input_ids"], ["out"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_session_run_casts_feeds_and_drops_extras(tmp_path):
    session = OnnxSession(_identity_model(tmp_path / "m.onnx"))
    out = session.run({"input_ids": np.array([[1, 2]], dtype=np.int32), "token_type_ids": np.zeros((1, 2))})
    assert out["out"].dtype == np.int64 and out["out"].tolist() == [[1, 2]]


def test_session_run_names_missing_inputs(tmp_path):
    session = OnnxSession(_identity_model(tmp_path / "m.onnx"))
    with pytest.raises(InvalidInputError, match="input_ids"):
        session.run({"attention_mask": np.ones((1, 2))})


def test_corrupted_onnx_file_gives_clear_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(CorruptModelError, match="model.onnx.*re-export"):
        OnnxSession(path)


def test_cuda_request_on_this_machine(tmp_path):
    """Without the CUDA provider the session refuses clearly; with it, it runs or warns of a fallback."""
    path = _identity_model(tmp_path / "m.onnx")
    if CUDA not in ort.get_available_providers():
        with pytest.raises(DeviceNotAvailableError, match="CUDAExecutionProvider"):
            OnnxSession(path, device="cuda")
        return
    with warnings.catch_warnings(record=True):
        session = OnnxSession(path, device="cuda")
    assert session.run({"input_ids": np.ones((1, 2), dtype=np.int64)})["out"].shape == (1, 2)


def test_fallback_to_cpu_warns(tmp_path, monkeypatch):
    """When onnxruntime drops the CUDA provider at session creation, the user is told."""
    path = _identity_model(tmp_path / "m.onnx")
    real = ort.InferenceSession

    def cpu_only(model, sess_options=None, providers=None):
        return real(model, sess_options=sess_options, providers=[CPU])

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", cpu_only)
    with pytest.warns(RuntimeWarning, match="fell back to the CPU"):
        OnnxSession(path, device="cuda")


def test_thread_count_is_checked(tmp_path):
    with pytest.raises(InvalidOptionError, match="intra_op_num_threads"):
        OnnxSession(_identity_model(tmp_path / "m.onnx"), intra_op_num_threads=-2)
