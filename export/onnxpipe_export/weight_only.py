"""Weight-only quantization of generation graphs with onnxruntime's MatMulNBits: 4-bit (`--dtype q4`) and 8-bit
(`--dtype int8` of generation tasks), by the recipe of weight_only_recipes.py (algorithm, zero points, block size).

Every MatMul whose weight is a constant becomes a MatMulNBits node with int4 / int8 weights in blocks along the
input axis, scales in fp32. Accuracy level 4 lets the kernel quantize activations to int8 per block and compute
in int8 (VNNI / AMX): one decoding step of a gpt2-size model took 9.5 ms (q4) and 13.4 ms (8-bit) against
14.4 ms for q4 with fp32 compute and 35 ms for fp32, while onnxruntime's dynamic int8 (MatMulInteger, the
encoder tasks' int8) took 56 ms: its kernels are slow for the one-row products of a decoding step, and 8-bit
MatMulNBits without level 4 took 361 ms. Every algorithm's nodes get the recipe's level (HQQ writes none).
Subgraphs (If branches) are quantized by the round-to-nearest and HQQ recipes; merged decoders are quantized
half by half before merging (generative_variants.py), so the others see plain graphs. Gemm nodes with a
constant weight (GPT-2's Conv1D layers export as Gemm) are first rewritten as MatMul + Add, which computes the
same thing, so they are quantized as well. A tied LM head reads `Transpose(embedding)`: the transposed
embedding is stored as its own initializer so the LM head (the largest matrix product of a small decoder) is
quantized too, and the token lookup then reads the head's 4-/8-bit table through GatherBlockQuantized
(weight_only_embedding.py), so no fp32 table is left.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from .onnx_files import save_model
from .tied_weights import unfuse_transposed_weights
from .weight_only_calibration import DecoderFeeds
from .weight_only_embedding import quantize_token_embedding, tied_head_outputs
from .weight_only_mixed import eight_bit_matmuls
from .weight_only_recipes import WeightOnlyRecipe

QUANTIZER_LOGGERS = ("onnxruntime.quantization.matmul_nbits_quantizer", "neural_compressor")


def quantize_weight_only(
    fp32_path: Path, output_path: Path, recipe: WeightOnlyRecipe, calibration: Optional[list[np.ndarray]] = None,
) -> dict[str, Any]:
    """Write the weight-only variant of `fp32_path` by `recipe`; return the manifest's `quantization` entry.
    `calibration`: token-id windows for calibrated recipes (gptq)."""
    import onnx

    model = onnx.load(str(fp32_path))
    unfuse_transposed_weights(model.graph)  # the fp32 file's tied head, back to Transpose + MatMul to be quantized
    rewritten = _gemms_to_matmuls(model.graph)
    folded: dict[str, str] = {}
    untied = _fold_weight_transposes(model.graph, folded)
    heads = tied_head_outputs(model.graph, folded)
    eight_bit = eight_bit_matmuls(model.graph, recipe.eight_bit_roles)
    eight_bit_outputs = set(_outputs_of(model.graph, eight_bit))
    fp32_kept = eight_bit_matmuls(model.graph, recipe.keep_fp32)
    if eight_bit:
        model = _quantize(model, _eight_bit_recipe(recipe), None, keep_only=eight_bit)
    quantized = _quantize(model, recipe, calibration, skip=fp32_kept)
    _set_accuracy_level(quantized.graph, recipe.accuracy_level)
    embedding = None
    if recipe.quantize_embedding:
        head_bits = 8 if eight_bit_outputs & set(heads) else recipe.bits
        embedding = quantize_token_embedding(quantized.graph, heads, head_bits, recipe.block_size, recipe.symmetric)
    count = sum(1 for node in _all_nodes(quantized.graph) if node.op_type == "MatMulNBits")
    save_model(quantized, output_path)
    entry = {
        **recipe.settings(), "quantized_matmuls": count, "gemms_rewritten_as_matmul": rewritten,
        "transposed_weights_folded": untied,
        "embedding": embedding or "fp32 (no token lookup on a table whose rows fill whole blocks)",
    }
    if recipe.eight_bit_roles:
        entry["eight_bit_matmuls"] = len(eight_bit)
    return entry


def _eight_bit_recipe(recipe: WeightOnlyRecipe) -> WeightOnlyRecipe:
    """The 8-bit round-to-nearest recipe of a mixed q4 file's 8-bit MatMuls (the int8 file's recipe)."""
    return WeightOnlyRecipe(bits=8, method="rtn", block_size=recipe.block_size, accuracy_level=recipe.accuracy_level)


def _outputs_of(graph: Any, names: list[str]) -> list[str]:
    """The first outputs of the nodes called `names` (the MatMulNBits that replaced them keep their outputs)."""
    wanted = set(names)
    return [node.output[0] for node in graph.node if node.name in wanted]


def _quantize(
    model: Any, recipe: WeightOnlyRecipe, calibration: Optional[list[np.ndarray]], keep_only: Optional[list[str]] = None,
    skip: Optional[list[str]] = None,
) -> Any:
    """Run onnxruntime's MatMulNBitsQuantizer with the recipe's algorithm; return the quantized ModelProto.
    `keep_only`: quantize only these MatMul nodes (the 8-bit pass of a mixed file)."""
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        GPTQWeightOnlyQuantConfig,
        HQQWeightOnlyQuantConfig,
        KQuantWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    ops = ("MatMul",)
    if recipe.algorithm == "rtn":
        config: Any = DefaultWeightOnlyQuantConfig(
            block_size=recipe.block_size, is_symmetric=recipe.symmetric, accuracy_level=recipe.accuracy_level,
            quant_format=QuantFormat.QOperator, op_types_to_quantize=ops, bits=recipe.bits,
        )
    elif recipe.algorithm == "kquant":
        config = KQuantWeightOnlyQuantConfig(op_types_to_quantize=ops)
    elif recipe.algorithm == "hqq":
        config = HQQWeightOnlyQuantConfig(block_size=recipe.block_size, bits=recipe.bits, op_types_to_quantize=ops)
    else:
        config = GPTQWeightOnlyQuantConfig(calibration_data_reader=DecoderFeeds(model, calibration or []), op_types_to_quantize=ops)
    excluded = None
    if keep_only is not None:
        kept = set(keep_only)
        excluded = [n.name for n in _all_nodes(model.graph) if n.op_type == "MatMul" and n.name not in kept]
    if skip:
        excluded = [*(excluded or []), *skip]
    quantizer = MatMulNBitsQuantizer(
        model, bits=recipe.bits, block_size=recipe.block_size, is_symmetric=recipe.symmetric,
        accuracy_level=recipe.accuracy_level, algo_config=config, nodes_to_exclude=excluded,
    )
    patch = _zero_points_per_row() if recipe.algorithm in ("kquant", "gptq") else contextlib.nullcontext()
    loggers = [logging.getLogger(name) for name in QUANTIZER_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)  # they log every node they visit at INFO
    try:
        # neural_compressor prints a progress bar; k-quant divides by zero on constant blocks (and keeps RTN's values)
        with patch, contextlib.redirect_stdout(io.StringIO()), np.errstate(divide="ignore", invalid="ignore"), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # HQQ: torch.from_numpy on a read-only array
            quantizer.process()
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    return quantizer.model.model


@contextlib.contextmanager
def _zero_points_per_row() -> Iterator[None]:
    """onnxruntime 1.32's k-quant and GPTQ (its neural_compressor copy) pack 4-bit zero points across rows, which
    breaks (a reshape error, or shifted zero points) when a row has an odd number of blocks (SmolLM2's 576 inputs
    in blocks of 64). While they run, its node builder gets no zero points and they are packed here, row by row,
    as MatMulNBits reads them."""
    from onnx import numpy_helper
    from onnxruntime.quantization.neural_compressor import weight_only as inc

    original = inc.make_matmul_weight_only_node

    def build(node, weight_shape, num_bits, group_size, k_blocks, q_weight, scale, zero_point, accuracy_level=0):
        matmul, inits = original(node, weight_shape, num_bits, group_size, k_blocks, q_weight, scale, None, accuracy_level)
        if zero_point is not None:
            points = np.asarray(zero_point).reshape(weight_shape[1], k_blocks).astype(np.uint8)
            if num_bits == 4:
                points = np.pad(points, ((0, 0), (0, k_blocks % 2)), constant_values=8)
                points = (points[:, 0::2] | (points[:, 1::2] << 4)).astype(np.uint8)
            inits.append(numpy_helper.from_array(points, node.input[1] + "_zp"))
            matmul.input.append(node.input[1] + "_zp")
        return matmul, inits

    inc.make_matmul_weight_only_node = build
    try:
        yield
    finally:
        inc.make_matmul_weight_only_node = original


def _set_accuracy_level(graph: Any, level: int) -> None:
    """Give every MatMulNBits node (subgraphs too) the recipe's accuracy_level (HQQ sets none)."""
    from onnx import helper

    for node in _all_nodes(graph):
        if node.op_type != "MatMulNBits":
            continue
        kept = [a for a in node.attribute if a.name != "accuracy_level"]
        del node.attribute[:]
        node.attribute.extend(kept)
        if level:
            node.attribute.append(helper.make_attribute("accuracy_level", level))


def _fold_weight_transposes(graph: Any, sources: Optional[dict[str, str]] = None) -> int:
    """Point each MatMul that reads Transpose(2-D initializer) at a transposed initializer; count them.
    `sources` (when given) receives transposed initializer -> the initializer it transposes."""
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
            if sources is not None:
                sources[name] = source.input[0]
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
