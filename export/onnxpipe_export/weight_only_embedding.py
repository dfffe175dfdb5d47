"""The token embedding of a weight-only file as onnxruntime's GatherBlockQuantized, sharing a tied LM head's bits.

MatMulNBits stores a weight W (K x N) as B (N, K / block, block * bits / 8) uint8, blocks along K. A tied LM
head's W is the embedding table E (V x H) transposed, so its B is E itself, row by row, quantized in blocks
along H: exactly the layout GatherBlockQuantized reads with uint8 data, `bits` 4 or 8, gather axis 0 and
quantize axis 2. The lookup then reads the head's quantized table (its scales and zero points copied in the
shape Gather wants, V x H / block floats and bytes), and the fp32 table leaves the file. Without a tied head
(or when its zero points are floats, as HQQ writes them) the table is quantized on its own with round-to-nearest.
The gathered rows come out as (..., H / block, block) and are reshaped to (..., H).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

INPUT_IDS = "input_ids"
RESHAPING = ("Reshape", "Cast", "Squeeze", "Unsqueeze", "Identity", "Flatten")  # GPT-2 reshapes input_ids first


def token_lookups(graph: Any) -> list[Any]:
    """The Gather nodes whose indices are `input_ids` (or input_ids only reshaped / cast) on a 2-D initializer."""
    producers = {out: node for node in graph.node for out in node.output}
    initializers = {init.name: init for init in graph.initializer}

    def from_ids(name: str) -> bool:
        for _ in range(8):
            if name == INPUT_IDS:
                return True
            node = producers.get(name)
            if node is None or node.op_type not in RESHAPING:
                return False
            name = node.input[0]
        return False

    return [
        node for node in graph.node
        if node.op_type == "Gather" and node.input[0] in initializers and len(initializers[node.input[0]].dims) == 2
        and from_ids(node.input[1])
    ]


def tied_head_outputs(graph: Any, folded: dict[str, str]) -> dict[str, str]:
    """Before quantization: MatMul output -> embedding initializer, for LM heads reading a folded transpose of a
    table that a Gather over `input_ids` also reads (`folded`: transposed initializer -> its source)."""
    tables = {node.input[0] for node in token_lookups(graph)}
    return {
        node.output[0]: folded[node.input[1]] for node in graph.node
        if node.op_type == "MatMul" and folded.get(node.input[1]) in tables
    }


def quantize_token_embedding(graph: Any, heads: dict[str, str], bits: int, block_size: int, symmetric: bool) -> Optional[str]:
    """Replace the token lookup (a Gather over `input_ids` on a 2-D initializer) by GatherBlockQuantized; return how it was done
    ("shared with the tied LM head", "quantized on its own") or None when the graph has no such lookup or its
    hidden size is not a multiple of the block."""
    from onnx import helper, numpy_helper

    initializers = {init.name: init for init in graph.initializer}
    gather = next(iter(token_lookups(graph)), None)
    if gather is None or initializers[gather.input[0]].dims[1] % block_size:
        return None
    table = gather.input[0]
    vocab, hidden = initializers[table].dims
    blocks = hidden // block_size
    shared = _shared_head(graph, initializers, heads, table, bits, block_size)
    if shared is not None:
        data, scales, zero_points = shared
        how = "shared with the tied LM head"
    else:
        data, scales, zero_points = _quantize_table(graph, numpy_helper.to_array(initializers[table]), table, bits, block_size, symmetric)
        how = "quantized on its own (round-to-nearest)"
    inputs = [data, gather.input[1], _add(graph, scales.reshape(vocab, blocks, 1).astype(np.float32), table + "_gather_scales")]
    if zero_points is not None:
        inputs.append(_add(graph, zero_points.reshape(vocab, blocks, 1).astype(np.uint8), table + "_gather_zero_points"))
    rows, shape, tail = (gather.output[0] + suffix for suffix in ("_blocks", "_ids_shape", "_row_shape"))
    hidden_name = _add(graph, np.array([hidden], dtype=np.int64), table + "_hidden_size")
    nodes = [
        helper.make_node("GatherBlockQuantized", inputs, [rows], name=gather.name + "_Q", domain="com.microsoft",
                         bits=bits, block_size=block_size, gather_axis=0, quantize_axis=2),
        helper.make_node("Shape", [gather.input[1]], [shape], name=gather.name + "_ids_shape"),
        helper.make_node("Concat", [shape, hidden_name], [tail], name=gather.name + "_row_shape", axis=0),
        helper.make_node("Reshape", [rows, tail], list(gather.output), name=gather.name + "_rows"),
    ]
    position = list(graph.node).index(gather)
    graph.node.remove(gather)
    for offset, node in enumerate(nodes):
        graph.node.insert(position + offset, node)
    if not any(table in node.input for node in graph.node):
        graph.initializer.remove(initializers[table])
    return how


def _shared_head(
    graph: Any, initializers: dict[str, Any], heads: dict[str, str], table: str, bits: int, block_size: int,
) -> Optional[tuple[str, np.ndarray, Optional[np.ndarray]]]:
    """(packed table name, scales, zero points or None) of the MatMulNBits head tied to `table`, if its
    layout fits GatherBlockQuantized (uint8 zero points or none, same bits and block)."""
    from onnx import helper, numpy_helper

    for node in graph.node:
        if node.op_type != "MatMulNBits" or heads.get(node.output[0]) != table:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("bits") != bits or attrs.get("block_size") != block_size or node.input[1] not in initializers:
            return None
        vocab, blocks = attrs["N"], attrs["K"] // block_size
        scales = numpy_helper.to_array(initializers[node.input[2]]).reshape(vocab, blocks)
        if len(node.input) < 4 or not node.input[3]:
            return node.input[1], scales, None
        zero_points = numpy_helper.to_array(initializers[node.input[3]])
        if zero_points.dtype != np.uint8:  # HQQ: fp32 zero points, which GatherBlockQuantized does not read
            return None
        return node.input[1], scales, _unpack(zero_points, bits, vocab, blocks)
    return None


def _unpack(zero_points: np.ndarray, bits: int, vocab: int, blocks: int) -> np.ndarray:
    """MatMulNBits zero points (4-bit: two per byte along the blocks of a row) -> one byte per block."""
    if bits == 8:
        return zero_points.reshape(vocab, blocks)
    packed = zero_points.reshape(vocab, -1)
    low, high = packed & 0x0F, packed >> 4
    return np.stack([low, high], axis=-1).reshape(vocab, -1)[:, :blocks]


def _quantize_table(
    graph: Any, table: np.ndarray, name: str, bits: int, block_size: int, symmetric: bool,
) -> tuple[str, np.ndarray, Optional[np.ndarray]]:
    """Round-to-nearest blocks of the table's rows with onnxruntime's MatMulNBits packer; adds the packed table."""
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits, quantize_matmul_8bits

    vocab, hidden = table.shape
    blocks = hidden // block_size
    packed = np.zeros((vocab, blocks, block_size * bits // 8), dtype=np.uint8)
    scales = np.zeros((vocab, blocks), dtype=np.float32)
    per_byte = 8 // bits
    zero_points = np.zeros((vocab, (blocks + per_byte - 1) // per_byte), dtype=np.uint8)
    pack = quantize_matmul_4bits if bits == 4 else quantize_matmul_8bits
    pack(packed, np.ascontiguousarray(table.T.astype(np.float32)), scales, zero_points, block_size, vocab, hidden, symmetric)
    data = _add(graph, packed, name + f"_Q{bits}_gather")
    return data, scales, None if symmetric else _unpack(zero_points, bits, vocab, blocks)


def _add(graph: Any, array: np.ndarray, name: str) -> str:
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(array, name))
    return name
