"""The reduced-precision files of a generation export: int8, fp16 and q4, per component.

A merged decoder (encoder-decoder models) is never converted as one graph: fp16 conversion breaks its
If branches (they return outer-scope values and read values the converter drops), and the quantizers
quantize each branch's copy of a shared weight (the int8 file came out larger than fp32). Instead
optimum's two decoders are converted one by one and merged again, so the branches share every
identical weight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from onnxpipe.manifest import variant_filename

from .dtypes import QUANTIZATION
from .errors import ConversionError, ExportOptionError, first_line
from .onnx_files import save_model
from .tied_weights import unfuse_transposed_weights
from .weight_only import quantize_weight_only
from .weight_only_recipes import WeightOnlyOptions

DEFAULT_OPTIONS = WeightOnlyOptions()


def write_generation_variant(
    dtype: str, fp32_path: Path, output_path: Path, options: WeightOnlyOptions = DEFAULT_OPTIONS,
    calibration: Optional[list[np.ndarray]] = None,
) -> Optional[dict[str, Any]]:
    """Write one component's `dtype` variant (int8 / q4 by the recipes of `options`; `calibration`: token-id
    windows for a calibrated q4 recipe); return its manifest `quantization` entry."""
    try:
        if dtype in ("int8", "q4"):  # weight-only MatMulNBits: dynamic int8 (MatMulInteger) is slow per decoding step
            recipe = options.recipe(8 if dtype == "int8" else 4)
            return quantize_weight_only(fp32_path, output_path, recipe, calibration)
        return _fp16(fp32_path, output_path)
    except ExportOptionError:
        raise
    except Exception as exc:  # the quantizer and converter raise bare exceptions on unusual graphs
        raise ConversionError(f"Writing the {dtype} variant of {fp32_path.name} failed: {first_line(exc)}") from exc


def _fp16(fp32_path: Path, output_path: Path) -> dict[str, Any]:
    """fp16 weights and compute with fp32 inputs and outputs (the cache stays fp32 at the IO)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    unfuse_transposed_weights(model.graph)  # the converter knows MatMul, not the fp32 file's FusedMatMul
    model = convert_float_to_float16(model, keep_io_types=True)
    _sort_nodes(model.graph)  # the converter appends its input casts last; onnx.checker wants them first
    save_model(model, output_path)
    return dict(QUANTIZATION["fp16"] or {})


def _sort_nodes(graph: Any) -> None:
    """Order a graph's nodes topologically (stable: nodes keep their order when they already can)."""
    ready = {i.name for i in graph.input} | {init.name for init in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        left = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                left.append(node)
        if len(left) == len(pending):  # inputs from nowhere (or a cycle): keep the rest as they were
            ordered.extend(left)
            break
        pending = left
    del graph.node[:]
    graph.node.extend(ordered)


def merged_decoder_variant(
    dtype: str, plain: Path, output_path: Path, options: WeightOnlyOptions = DEFAULT_OPTIONS,
) -> Optional[dict[str, Any]]:
    """A reduced-precision merged decoder: optimum's two decoders converted one by one, then merged again."""
    from optimum.onnx import merge_decoders

    halves, entry = [], None
    for stem in ("decoder_model", "decoder_with_past_model"):
        half = plain / variant_filename(dtype, stem)
        entry = write_generation_variant(dtype, plain / f"{stem}.onnx", half, options)
        halves.append(half)
    try:
        merge_decoders(halves[0], halves[1], strict=False, save_path=str(output_path))
    except Exception as exc:  # the merger raises bare exceptions on unusual graphs
        raise ConversionError(f"Merging the {dtype} decoders failed: {first_line(exc)}") from exc
    return {**(entry or {}), "merged_after_conversion": True}
