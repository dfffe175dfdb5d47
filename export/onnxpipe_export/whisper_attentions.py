"""Cross-attention outputs for Whisper's word timestamps: the merged decoder also returns, for each decoder layer that
holds an alignment head, the softmax of its cross-attention (`cross_attentions.<layer>`, float32, (batch, heads,
decoder positions, encoder positions)).

The probabilities are computed inside the graph anyway (the Softmax under `layers.<i>/encoder_attn` of each If
branch); naming them as outputs adds one Cast per layer and keeps those tensors alive until the step ends. The
runtime asks for them only in the one extra decoder pass that aligns a window (onnxpipe.tasks.whisper.alignment);
decoding steps do not request them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional, Sequence

from .onnx_files import save_model

OUTPUT_PREFIX = "cross_attentions."
_SOFTMAX = re.compile(r"layers\.(\d+)/encoder_attn/Softmax$")


def alignment_layers(alignment_heads: Optional[Sequence[Sequence[int]]]) -> list[int]:
    """The decoder layers that hold an alignment head, sorted."""
    return sorted({int(layer) for layer, _ in alignment_heads or []})


def _softmaxes(graph: Any) -> dict[int, str]:
    """layer -> output name of its cross-attention Softmax in one graph (branch)."""
    found = {}
    for node in graph.node:
        match = _SOFTMAX.search(node.name) if node.op_type == "Softmax" else None
        if match:
            found[int(match.group(1))] = node.output[0]
    return found


def _expose(graph: Any, layers: Sequence[int]) -> None:
    """Add Cast(float) outputs `cross_attentions.<layer>` to one graph from its cross-attention softmaxes."""
    from onnx import TensorProto, helper

    found = _softmaxes(graph)
    missing = [layer for layer in layers if layer not in found]
    if missing:
        raise ValueError(f"no cross-attention Softmax found for decoder layers {missing} (found layers {sorted(found)})")
    for layer in layers:
        name = f"{OUTPUT_PREFIX}{layer}"
        graph.node.append(helper.make_node("Cast", [found[layer]], [name], name=f"expose_{name}", to=TensorProto.FLOAT))
        graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))


def add_cross_attention_outputs(path: Path, layers: Sequence[int]) -> list[str]:
    """Rewrite the decoder at `path` (merged: both If branches and the If node; or a plain decoder) so it also
    outputs the cross-attention probabilities of `layers`; return the output names."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    names = [f"{OUTPUT_PREFIX}{layer}" for layer in layers]
    branches = [node for node in model.graph.node if node.op_type == "If"]
    if branches:
        (node,) = branches
        for attribute in node.attribute:
            if attribute.name in ("then_branch", "else_branch"):
                _expose(attribute.g, layers)
        node.output.extend(names)
        model.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names)
    else:
        _expose(model.graph, layers)
    save_model(model, path)
    return names
