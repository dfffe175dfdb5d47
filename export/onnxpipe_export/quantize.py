"""Step 4: the reduced-precision variants, derived from the fp32 graph (fused or not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from .dtypes import QUANTIZATION
from .errors import ConversionError, first_line
from .onnx_files import EXTERNAL_DATA_THRESHOLD, save_model, side_files
from .per_token import per_token_activations
from .samples import Batch
from .smooth import SMOOTH_ALPHA, activation_maxima, smooth_matmuls


def _size_with_data(path: Path) -> int:
    return sum(p.stat().st_size for p in [path, *side_files(path)])


def _convs_kept_fp32(path: Path) -> list[str]:
    """Every Conv node: int8 makes them slower and worse. ConvInteger (dynamic int8) ran a detr-resnet-50-size
    detector at 0.63x the torch pipeline where the fp32 graph ran at 1.76x (2-core Xeon, 480x640 pictures); on a tiny
    wav2vec2 CTC model int8 Conv1d dropped logit-frame argmax agreement with fp32 from 0.96-1.0 to 0.66-0.82; and
    ORT's quantizer raises on convs whose weight is computed in the graph (wav2vec2's weight-normed positional conv).
    MatMul-heavy parts (transformer layers, ViT) are still quantized."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return [n.name for n in model.graph.node if n.op_type == "Conv"]


def quantize_int8(fp32_path: Path, output_path: Path, calibration: Sequence[Batch] = ()) -> dict[str, Any]:
    """Dynamic int8 that is right on every CPU class: QInt8 weights per output channel with a zero point each
    (asymmetric: all 256 levels), activations quantized at run time with one scale per token (per_token.py).

    With calibration batches, MatMul inputs are first smoothed (smooth.py) so activation outliers do not eat the
    int8 range. Measured on real all-MiniLM-L6-v2, 32 varied sentences, worst cosine to torch one at a time / in
    one padded batch of 32: symmetric weights and per-tensor activations (the recipe before) 0.988 / 0.973;
    asymmetric weights 0.995 / 0.975; plus per-token activations 0.995 / 0.992, at about 10% more time at
    1 x 128 tokens. On x86 CPUs without VNNI the runtime sets `session.x64quantprecision=1` (onnxpipe.cpu), so the
    same file gives the same numbers there. DefaultTensorType lets the quantizer handle fused contrib ops whose
    output types it cannot infer.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings: dict[str, Any] = dict(QUANTIZATION["int8"] or {})
    source = fp32_path
    if calibration:
        model = onnx.load(str(fp32_path))
        maxima = activation_maxima(model, [b.feeds for b in calibration], [b.mask for b in calibration])
        count = smooth_matmuls(model, maxima)
        source = output_path.with_name(output_path.stem + "_smoothed.onnx")
        save_model(model, source)
        settings["smoothquant"] = {"alpha": SMOOTH_ALPHA, "matmuls": count, "calibration_texts": len(calibration)}
    kept = _convs_kept_fp32(source)
    if kept:
        settings["fp32_convs"] = len(kept)
    dynamic = output_path.with_name(output_path.stem + "_dynamic.onnx")
    quantize_dynamic(
        str(source),
        str(dynamic),
        weight_type=QuantType.QInt8,
        per_channel=True,
        use_external_data_format=_size_with_data(fp32_path) > EXTERNAL_DATA_THRESHOLD,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "WeightSymmetric": False},
        nodes_to_exclude=kept,
    )
    model = onnx.load(str(dynamic))
    settings["per_token_inputs"] = per_token_activations(model)
    save_model(model, output_path)
    for scratch in {source, dynamic} - {fp32_path}:
        for path in [scratch, *side_files(scratch)]:
            path.unlink()
    return settings


def convert_fp16(fp32_path: Path, output_path: Path, calibration: Sequence[Batch] = ()) -> Optional[dict[str, Any]]:
    """Cast weights and compute to float16, keeping float32 inputs and outputs so callers feed the same arrays."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    save_model(convert_float_to_float16(model, keep_io_types=True), output_path)
    return QUANTIZATION["fp16"]


CONVERTERS = {"int8": quantize_int8, "fp16": convert_fp16}


def write_variant(dtype: str, fp32_path: Path, output_path: Path, calibration: Sequence[Batch] = ()) -> Optional[dict[str, Any]]:
    """Write the `dtype` variant of the fp32 graph to `output_path`; return its manifest `quantization` entry."""
    try:
        return CONVERTERS[dtype](fp32_path, output_path, calibration)
    except Exception as exc:  # the quantizer and converter raise bare exceptions on unusual graphs
        raise ConversionError(f"Writing the {dtype} variant of {fp32_path.name} failed: {first_line(exc)}") from exc
