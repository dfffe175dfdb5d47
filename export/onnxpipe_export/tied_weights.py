"""Tied output heads without a transposed copy: `MatMul(x, Transpose(E))` becomes `FusedMatMul(x, E, transB=1)`.

Generation graphs read the embedding table E twice: as a Gather table, and transposed for the tied LM head.
onnxruntime folds the Transpose into a second, transposed copy of E at load time, once per If branch of a merged
decoder: whisper-tiny's fp32 decoder held 440 MB after load instead of 289 MB, gpt2's load peaked at 906 MB
instead of 767 MB. FusedMatMul (onnxruntime's contrib op, CPU and CUDA) reads E as it is, with identical results.

The weight-only quantizer and the fp16 converter want plain MatMuls, so `unfuse_transposed_weights` turns the
rewrite back before they run (the quantized LM head then reads a transposed, quantized copy, as before).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from .onnx_files import save_model

CONTRIB = "com.microsoft"


def _graphs_in(node: Any) -> Iterable[Any]:
    import onnx

    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.g
        yield from attribute.graphs


def _transposes_2d(node: Any) -> bool:
    from onnx import helper

    perm = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "perm"), None)
    return perm in (None, [1, 0])


def fuse_transposed_weights(graph: Any, outer: frozenset = frozenset()) -> int:
    """Rewrite every MatMul whose B input is Transpose(2-D initializer of this graph or an enclosing one) as a
    FusedMatMul(transB=1) on the initializer itself, in `graph` and its subgraphs; returns the count."""
    from onnx import helper

    shapes = {init.name: len(init.dims) for init in graph.initializer}
    visible = outer | {name for name, rank in shapes.items() if rank == 2}
    count = sum(fuse_transposed_weights(sub, visible) for node in graph.node for sub in _graphs_in(node))
    for transpose in [n for n in graph.node if n.op_type == "Transpose" and n.input[0] in visible]:
        if not _transposes_2d(transpose):
            continue
        out = transpose.output[0]
        users = [n for n in graph.node if out in n.input]
        if any(out == o.name for o in graph.output) or not users:
            continue
        if not all(u.op_type == "MatMul" and u.domain in ("", "ai.onnx") and list(u.input) == [u.input[0], out] and u.input[0] != out for u in users):
            continue
        for user in users:
            index = list(graph.node).index(user)
            fused = helper.make_node(
                "FusedMatMul", [user.input[0], transpose.input[0]], list(user.output), name=user.name or None,
                domain=CONTRIB, transA=0, transB=1, alpha=1.0,
            )
            graph.node.remove(user)
            graph.node.insert(index, fused)
        graph.node.remove(transpose)
        count += 1
    return count


def unfuse_transposed_weights(graph: Any) -> int:
    """Undo `fuse_transposed_weights` in `graph` and its subgraphs (only the FusedMatMuls it writes)."""
    from onnx import helper

    count = sum(unfuse_transposed_weights(sub) for node in graph.node for sub in _graphs_in(node))
    for node in [n for n in graph.node if n.op_type == "FusedMatMul" and n.domain == CONTRIB]:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attributes != {"transA": 0, "transB": 1, "alpha": 1.0}:
            continue
        index = list(graph.node).index(node)
        transposed = f"{node.input[1]}_transposed_for_{node.output[0]}"
        graph.node.remove(node)
        graph.node.insert(index, helper.make_node("MatMul", [node.input[0], transposed], list(node.output), name=node.name or None))
        graph.node.insert(index, helper.make_node("Transpose", [node.input[1]], [transposed], perm=[1, 0]))
        count += 1
    return count


def fuse_file(path: Path) -> int:
    """Apply `fuse_transposed_weights` to an ONNX file in place (kept unchanged when there is nothing to do)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    count = fuse_transposed_weights(model.graph)
    if count:
        if not any(entry.domain == CONTRIB for entry in model.opset_import):
            model.opset_import.append(helper.make_opsetid(CONTRIB, 1))
        save_model(model, path)
    return count
