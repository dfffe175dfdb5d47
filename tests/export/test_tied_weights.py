"""The tied-head rewrite (export/onnxpipe_export/tied_weights.py) gives the same outputs, also inside If branches,
and undoes itself exactly for the quantizer and the fp16 converter."""

import numpy as np
import pytest

pytest.importorskip("onnx")
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from onnxpipe_export.tied_weights import fuse_transposed_weights, unfuse_transposed_weights  # noqa: E402

VOCAB, HIDDEN = 50, 8


def _head(name: str) -> onnx.GraphProto:
    """A branch: embed ids with E, then project back with E transposed (a tied LM head)."""
    nodes = [
        helper.make_node("Gather", ["E", "ids"], [f"{name}_h"]),
        helper.make_node("Transpose", ["E"], [f"{name}_Et"], perm=[1, 0]),
        helper.make_node("MatMul", [f"{name}_h", f"{name}_Et"], [f"{name}_logits"]),
    ]
    out = helper.make_tensor_value_info(f"{name}_logits", TensorProto.FLOAT, None)
    return helper.make_graph(nodes, name, [], [out])


def _model() -> onnx.ModelProto:
    """If(flag) over two tied-head branches reading the outer initializer E, plus one tied head outside the If."""
    E = numpy_helper.from_array(np.random.default_rng(0).normal(size=(VOCAB, HIDDEN)).astype(np.float32), "E")
    outer = _head("outer")
    nodes = [helper.make_node("If", ["flag"], ["logits"], then_branch=_head("then"), else_branch=_head("else")), *outer.node]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 3]), helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None), helper.make_tensor_value_info("outer_logits", TensorProto.FLOAT, None)],
        [E],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])


def _run(model: onnx.ModelProto, flag: bool) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = np.array([[1, 7, 49], [0, 3, 3]], dtype=np.int64)
    return session.run(None, {"ids": ids, "flag": np.array(flag)})


def _ops(graph: onnx.GraphProto) -> list[str]:
    ops = []
    for node in graph.node:
        ops.append(node.op_type)
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                ops.extend(_ops(attribute.g))
    return ops


def test_fuse_keeps_outputs_in_both_branches_and_outside():
    model = _model()
    expected = {flag: _run(model, flag) for flag in (True, False)}
    fused = onnx.ModelProto()
    fused.CopyFrom(model)
    assert fuse_transposed_weights(fused.graph) == 3
    assert "Transpose" not in _ops(fused.graph) and _ops(fused.graph).count("FusedMatMul") == 3
    for flag in (True, False):
        for got, want in zip(_run(fused, flag), expected[flag]):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert float(np.abs(expected[True][0]).max()) > 0.1  # the head computes something

    assert unfuse_transposed_weights(fused.graph) == 3
    assert _ops(fused.graph).count("Transpose") == 3 and "FusedMatMul" not in _ops(fused.graph)
    for flag in (True, False):
        for got, want in zip(_run(fused, flag), expected[flag]):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_transposes_with_other_users_or_perms_are_left_alone():
    model = _model()
    graph = model.graph
    # the outer Transpose also feeds an Identity: folding it away would leave the Identity without input
    graph.node.append(helper.make_node("Identity", ["outer_Et"], ["Et_copy"]))
    graph.output.append(helper.make_tensor_value_info("Et_copy", TensorProto.FLOAT, None))
    assert fuse_transposed_weights(graph) == 2  # the two branches only
    assert [n.op_type for n in graph.node].count("Transpose") == 1
