"""Weight-only quantization of generation graphs with onnxruntime's MatMulNBits: 4-bit (`--dtype q4`) and 8-bit
(`--dtype int8` of generation tasks).

Every MatMul whose weight is a constant becomes a MatMulNBits node with int4 / int8 weights in blocks of
BLOCK_SIZE along the input axis, symmetric (no zero points), scales in fp32. ACCURACY_LEVEL 4 lets the kernel
quantize activations to int8 per block and compute in int8 (VNNI / AMX): one decoding step of a gpt2-size model
took 9.5 ms (q4) and 13.4 ms (8-bit) against 14.4 ms for q4 with fp32 compute and 35 ms for fp32, while
onnxruntime's dynamic int8 (MatMulInteger, the encoder tasks' int8) took 56 ms: its kernels are slow for the
one-row products of a decoding step, and 8-bit MatMulNBits without level 4 took 361 ms.
Subgraphs (the merged decoder's If branches) are quantized too. Gemm nodes with a constant weight (GPT-2's
Conv1D layers export as Gemm) are first rewritten as MatMul + Add, which computes the same thing, so
they are quantized as well. A tied LM head reads `Transpose(embedding)`: the transposed embedding is
stored as its own initializer so the LM head (the largest matrix product of a small decoder) is
quantized too; the embedding lookup keeps the fp32 table, so the file holds one extra 4-bit copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .onnx_files import EXTERNAL_DATA_THRESHOLD
from .tied_weights import unfuse_transposed_weights

BLOCK_SIZE = 32
ACCURACY_LEVEL = 4  # MatMulNBits computes with int8 activations quantized per block


def settings(bits: int) -> dict[str, Any]:
    """The manifest's `quantization` entry for `bits`-bit weight-only files (before per-file counts)."""
    return {
        "method": "MatMulNBits", "bits": bits, "block_size": BLOCK_SIZE, "symmetric": True, "op_types": ["MatMul"],
        "accuracy_level": ACCURACY_LEVEL, "activations": "int8 per block, at run time",
    }


def quantize_weight_only(fp32_path: Path, output_path: Path, bits: int) -> dict[str, Any]:
    """Write the `bits`-bit (4 or 8) weight-only variant of `fp32_path`; return the manifest's `quantization` entry."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    model = onnx.load(str(fp32_path))
    unfuse_transposed_weights(model.graph)  # the fp32 file's tied head, back to Transpose + MatMul to be quantized
    rewritten = _gemms_to_matmuls(model.graph)
    untied = _fold_weight_transposes(model.graph)
    config = DefaultWeightOnlyQuantConfig(
        block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=ACCURACY_LEVEL, quant_format=QuantFormat.QOperator,
        op_types_to_quantize=("MatMul",), bits=bits,
    )
    quantizer = MatMulNBitsQuantizer(
        model, bits=bits, block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=ACCURACY_LEVEL, algo_config=config
    )
    logger = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = logger.level
    logger.setLevel(logging.WARNING)  # it logs every node it visits at INFO
    try:
        quantizer.process()
    finally:
        logger.setLevel(level)
    quantized = quantizer.model.model
    count = sum(1 for node in _all_nodes(quantized.graph) if node.op_type == "MatMulNBits")
    large = fp32_path.stat().st_size > EXTERNAL_DATA_THRESHOLD
    quantizer.model.save_model_to_file(str(output_path), use_external_data_format=large)
    return {
        **settings(bits), "quantized_matmuls": count, "gemms_rewritten_as_matmul": rewritten, "transposed_weights_folded": untied,
    }


def _fold_weight_transposes(graph: Any) -> int:
    """Point each MatMul that reads Transpose(2-D initializer) at a transposed initializer; count them."""
    from onnx import helper, numpy_helper

    initializers = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    folded: dict[str, str] = {}
    for node in graph.node:
        source = producers.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) > 1 else None
        if source is None or source.op_type != "Transpose" or source.input[0] not in initializers:
            continue
        perm = next((helper.get_attribute_value(a) for a in source.attribute if a.name == "perm"), None)
        if len(initializers[source.input[0]].dims) != 2 or perm not in (None, [1, 0]):
            continue
        if source.output[0] not in folded:
            name = source.output[0] + "_folded"
            array = numpy_helper.to_array(initializers[source.input[0]]).T.copy()
            graph.initializer.append(numpy_helper.from_array(array, name))
            folded[source.output[0]] = name
        node.input[1] = folded[source.output[0]]
    still_read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    unused = [node for node in graph.node if node.op_type == "Transpose" and node.output[0] in folded
              and node.output[0] not in still_read]
    for node in unused:
        graph.node.remove(node)
    return len(folded)


def _gemms_to_matmuls(graph: Any) -> int:
    """Rewrite Gemm(A, B[, C]) with constant B, alpha = beta = 1 and no transA as MatMul(A, B') + C; count them."""
    from onnx import helper, numpy_helper

    initializers = {init.name: init for init in graph.initializer}
    count = 0
    nodes = []
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.g is not None and attribute.g.node:
                count += _gemms_to_matmuls(attribute.g)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (
            node.op_type != "Gemm" or node.input[1] not in initializers or attrs.get("transA", 0)
            or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0
        ):
            nodes.append(node)
            continue
        weight = node.input[1]
        if attrs.get("transB", 0):
            transposed = numpy_helper.to_array(initializers[weight]).T.copy()
            weight = weight + "_transposed"
            graph.initializer.append(numpy_helper.from_array(transposed, weight))
        if len(node.input) > 2 and node.input[2]:
            product = node.output[0] + "_matmul"
            nodes.append(helper.make_node("MatMul", [node.input[0], weight], [product], name=node.name + "_MatMul"))
            nodes.append(helper.make_node("Add", [product, node.input[2]], list(node.output), name=node.name + "_Add"))
        else:
            nodes.append(helper.make_node("MatMul", [node.input[0], weight], list(node.output), name=node.name + "_MatMul"))
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def _all_nodes(graph: Any):
    """Every node of a graph and of its subgraphs (If / Loop bodies)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.g is not None and attribute.g.node:
                yield from _all_nodes(attribute.g)
            for sub in attribute.graphs:
                yield from _all_nodes(sub)
