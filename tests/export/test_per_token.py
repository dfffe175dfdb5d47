"""Per-token activation scales (onnxpipe_export.per_token): each row is quantized on its own, so a row's int8 result
does not depend on the other rows of its batch, and onnxruntime's fusions keep the per-row scales."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from onnxpipe_export.per_token import per_token_activations  # noqa: E402

K, N = 48, 16


def _quantized_matmul(tmp_path, weight: np.ndarray):
    """A dynamically quantized graph of x[B, T, K] @ W (asymmetric per-channel weights, as the export writes)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="dense")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None, N])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "fp32.onnx")
    quantize_dynamic(str(tmp_path / "fp32.onnx"), str(tmp_path / "int8.onnx"), weight_type=QuantType.QInt8,
                     per_channel=True, extra_options={"WeightSymmetric": False})
    return onnx.load(str(tmp_path / "int8.onnx"))


def _run(model, x: np.ndarray, level: str = "ORT_ENABLE_ALL") -> np.ndarray:
    import onnxruntime as ort

    from onnxpipe.session import session_options

    options = session_options()  # this CPU class's int8 settings: no int16 saturation on x86 without VNNI
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(K, N)).astype(np.float32)
    quantized = _quantized_matmul(tmp_path_factory.mktemp("per_token"), weight)
    rewritten = onnx.load_from_string(quantized.SerializeToString())
    assert per_token_activations(rewritten) == 1
    return weight, quantized, rewritten


def test_rows_no_longer_share_a_scale(case):
    """A quiet row next to a loud one: per-tensor scales lose the quiet row, per-token scales keep it."""
    weight, quantized, rewritten = case
    rng = np.random.default_rng(1)
    quiet = rng.normal(size=(1, 1, K)).astype(np.float32) * 0.01
    loud = rng.normal(size=(1, 1, K)).astype(np.float32) * 100
    batch = np.concatenate([quiet, loud], axis=1)
    exact = (batch @ weight)[0, 0]
    per_tensor, per_token = _run(quantized, batch)[0, 0], _run(rewritten, batch)[0, 0]
    assert np.abs(per_tensor - exact).max() > 10 * np.abs(per_token - exact).max()
    np.testing.assert_allclose(per_token, _run(rewritten, quiet)[0, 0], rtol=1e-6, atol=1e-9)


def test_every_optimization_level_computes_the_same(case):
    """onnxruntime fuses Mul(Cast(MatMulInteger), Mul(a_scale, w_scale)) into MatMulIntegerToFloat, which treats a
    per-row scale as per-tensor; the rewritten graph scales after the weight scale, which it leaves alone.
    The fusion is the same on every CPU; on x86 without VNNI the unoptimized run is no reference (onnxruntime
    applies session.x64quantprecision only in optimized sessions, so its products saturate there)."""
    from onnxpipe.cpu import X86_NO_VNNI, this_cpu

    if this_cpu().cpu_class == X86_NO_VNNI:
        pytest.skip("x86 without VNNI: an ORT_DISABLE_ALL session saturates int8 products (no x64quantprecision)")
    _, _, rewritten = case
    x = np.random.default_rng(2).normal(size=(3, 5, K)).astype(np.float32) * np.array([1, 30, 0.1])[:, None, None]
    results = [_run(rewritten, x.astype(np.float32), level) for level in ("ORT_DISABLE_ALL", "ORT_ENABLE_ALL")]
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-5)


def test_matches_the_per_row_quantization_arithmetic(case):
    weight, quantized, rewritten = case
    x = np.random.default_rng(3).normal(size=(2, 4, K)).astype(np.float32)
    scale = (np.abs(x).max(axis=-1, keepdims=True) + 1e-8) / 127
    q = np.round(x / scale)  # in [-127, 127]
    inits = {i.name: numpy_helper.to_array(i) for i in quantized.graph.initializer}
    w_q = next(v for k, v in inits.items() if v.dtype == np.int8 and v.shape == (K, N)).astype(np.float64)
    w_zero = next(v for k, v in inits.items() if v.dtype == np.int8 and v.shape == (N,)).astype(np.float64)
    w_scale = next(v for k, v in inits.items() if v.dtype == np.float32 and v.shape == (N,))
    expected = (q @ (w_q - w_zero)) * scale * w_scale
    np.testing.assert_allclose(_run(rewritten, x), expected, rtol=1e-4, atol=1e-4)


def test_activation_times_activation_products_keep_one_scale(tmp_path):
    """Only weight MatMuls are rewritten: the right-hand side of x @ y has no per-row scale to take."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "y"], ["z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, K]), helper.make_tensor_value_info("y", TensorProto.FLOAT, [K, N])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, N])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "fp32.onnx")
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(str(tmp_path / "fp32.onnx"), str(tmp_path / "int8.onnx"))
    assert per_token_activations(onnx.load(str(tmp_path / "int8.onnx"))) == 0
