"""Step 4: the reduced-precision variants, derived from the fp32 graph (fused or not)."""

from __future__ import annotations

from pathlib import Path

from .errors import ConversionError, first_line
from .onnx_files import EXTERNAL_DATA_THRESHOLD, save_model, side_files


def _size_with_data(path: Path) -> int:
    return sum(p.stat().st_size for p in [path, *side_files(path)])


def quantize_int8(fp32_path: Path, output_path: Path) -> None:
    """Dynamic int8 quantization: QInt8 weights, per output channel, activations quantized at run time.

    Per-channel keeps mean-pooled embeddings of a real MiniLM at cosine ~0.99 to torch, per-tensor ~0.92-0.97.
    DefaultTensorType lets the quantizer handle fused contrib ops whose output types it cannot infer.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32_path),
        str(output_path),
        weight_type=QuantType.QInt8,
        per_channel=True,
        use_external_data_format=_size_with_data(fp32_path) > EXTERNAL_DATA_THRESHOLD,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def convert_fp16(fp32_path: Path, output_path: Path) -> None:
    """Cast weights and compute to float16, keeping float32 inputs and outputs so callers feed the same arrays."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    save_model(convert_float_to_float16(model, keep_io_types=True), output_path)


CONVERTERS = {"int8": quantize_int8, "fp16": convert_fp16}


def write_variant(dtype: str, fp32_path: Path, output_path: Path) -> None:
    """Write the `dtype` variant of the fp32 graph to `output_path` (fp32 itself is never converted)."""
    try:
        CONVERTERS[dtype](fp32_path, output_path)
    except Exception as exc:  # the quantizer and converter raise bare exceptions on unusual graphs
        raise ConversionError(f"Writing the {dtype} variant of {fp32_path.name} failed: {first_line(exc)}") from exc
