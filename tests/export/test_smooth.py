"""SmoothQuant rescaling must leave the fp32 graph's outputs unchanged and even out activation ranges."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from onnxpipe_export.smooth import activation_maxima, smooth_matmuls


def _run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in feeds.items() if k in names})[0]


def test_smoothing_is_exact_in_fp32_and_flattens_outliers(models):
    model = onnx.load(str(models.get("bert", "feature-extraction").onnx / "model.onnx"))  # fused graph
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 300, size=(2, 12))
    mask = np.ones_like(ids)
    mask[1, 8:] = 0
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    before = _run(model, feeds)
    maxima = activation_maxima(model, [feeds], [mask])
    assert maxima and all(v.ndim == 1 and (v > 0).all() for v in maxima.values())
    assert any(node.op_type == "Attention" for node in model.graph.node if node.name in maxima)

    count = smooth_matmuls(model, maxima)
    assert count == len(maxima)
    onnx.checker.check_model(model)
    np.testing.assert_allclose(_run(model, feeds), before, rtol=1e-4, atol=1e-4)

    after = activation_maxima(model, [feeds], [mask])  # now the maxima of each product's smoothed input
    assert after.keys() == maxima.keys()
    spread_before = np.mean([v.max() / np.median(v) for v in maxima.values()])
    spread_after = np.mean([v.max() / np.median(v) for v in after.values()])
    assert spread_after < spread_before / 2
