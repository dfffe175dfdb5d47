"""SmoothQuant before dynamic int8: move activation outliers of MatMul inputs into the weights.

Dynamic int8 quantizes each activation tensor with one scale, so a few outlier channels (BERT's FFN
outputs reach 100x their standard deviation) leave little resolution for the rest. Scaling input
channel j by 1/s_j and weight row j by s_j, with s_j = amax_j**alpha / wmax_j**(1 - alpha), leaves
the product unchanged in fp32 and evens out what the quantizer sees. On real all-MiniLM-L6-v2 this
lifts the worst mean-pooled cosine to torch from 0.973 to 0.991 (alpha 0.7; 0.5 and 0.85 do worse).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping

import numpy as np

SMOOTH_ALPHA = 0.7
_EPS = 1e-5


# ops computing input[0] @ input[1] (+ more): MatMul, and ORT's fused Attention with its packed QKV weight
SMOOTHABLE_OPS = ("MatMul", "Attention")


def _weight_matmuls(model: Any) -> list[Any]:
    """Matrix products whose weight (input 1) is a 2-D initializer used by no other node, so it can be rescaled."""
    initializers = {init.name: init for init in model.graph.initializer}
    uses = Counter(name for node in model.graph.node for name in node.input)
    return [
        node
        for node in model.graph.node
        if node.op_type in SMOOTHABLE_OPS
        and len(node.input) > 1
        and node.input[1] in initializers
        and len(initializers[node.input[1]].dims) == 2
        and uses[node.input[1]] == 1
    ]


def activation_maxima(model: Any, batches: Iterable[Mapping[str, np.ndarray]], masks: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """Per input channel, the largest |activation| entering each weight MatMul, over unmasked tokens."""
    import onnx
    import onnxruntime as ort

    nodes = _weight_matmuls(model)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    wanted = sorted({node.input[0] for node in nodes})
    probe.graph.output.extend(onnx.helper.ValueInfoProto(name=name) for name in wanted)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    graph_inputs = {i.name for i in session.get_inputs()}
    maxima: dict[str, np.ndarray] = {}
    for feeds, mask in zip(batches, masks):
        values = session.run(wanted, {k: v for k, v in feeds.items() if k in graph_inputs})
        for name, value in zip(wanted, values):
            rows = value[mask.astype(bool)] if value.ndim == 3 and value.shape[:2] == mask.shape else value
            channel_max = np.abs(rows.reshape(-1, rows.shape[-1])).max(axis=0)
            maxima[name] = channel_max if name not in maxima else np.maximum(maxima[name], channel_max)
    return {node.name: maxima[node.input[0]] for node in nodes}


def smooth_matmuls(model: Any, maxima: Mapping[str, np.ndarray], alpha: float = SMOOTH_ALPHA) -> int:
    """Rescale each MatMul's weight rows and insert a Mul(1/s) on its input, in place; return how many."""
    from onnx import helper, numpy_helper

    initializers = {init.name: init for init in model.graph.initializer}
    smoothed: dict[str, Any] = {}
    for node in _weight_matmuls(model):
        if node.name not in maxima:
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])
        scale = (np.maximum(maxima[node.name], _EPS) ** alpha / np.maximum(np.abs(weight).max(axis=1), _EPS) ** (1 - alpha))
        scale = scale.astype(weight.dtype)
        initializers[node.input[1]].CopyFrom(numpy_helper.from_array(weight * scale[:, None], node.input[1]))
        inverse_name = f"{node.name}/smooth_inverse_scale"
        model.graph.initializer.append(numpy_helper.from_array((1.0 / scale).astype(weight.dtype), inverse_name))
        smoothed_input = f"{node.name}/smoothed_input"
        smoothed[node.name] = helper.make_node("Mul", [node.input[0], inverse_name], [smoothed_input], name=f"{node.name}/smooth")
        node.input[0] = smoothed_input
    ordered = []
    for node in model.graph.node:  # each Mul goes right before its MatMul, keeping the graph topologically sorted
        if node.name in smoothed:
            ordered.append(smoothed[node.name])
        ordered.append(node)
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    return len(smoothed)
