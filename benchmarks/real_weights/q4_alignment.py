"""How much SmolLM2's GGUF origin flatters each 4-bit recipe: the relative weight error (||W - deq(q(W))|| / ||W||) of
onnxruntime's MatMulNBits quantizer on single linear layers of SmolLM2 (Q4_1 values) and of Whisper base (fp16 values,
the fair judge). A recipe that lands on GGUF's grid shows a far smaller error on SmolLM2 than on Whisper.

    python -m benchmarks.real_weights.q4_alignment
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .smollm2 import smollm2_folder
from .whisper_base import whisper_base_folder

LAYERS = {
    "smollm2": ["model.layers.0.self_attn.q_proj.weight", "model.layers.10.mlp.down_proj.weight"],
    "whisper-base": ["model.decoder.layers.2.fc1.weight", "model.decoder.layers.4.self_attn.q_proj.weight"],
}


def recipes() -> dict[str, Callable[[], Any]]:
    """MatMulNBits quantizer configurations by name (accuracy_level 0: fp32 compute, so only the weights differ)."""
    from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    def rtn(block: int, symmetric: bool) -> Callable[[], Any]:
        return lambda: mnq.DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=symmetric, accuracy_level=0)

    return {
        "rtn sym 32": rtn(32, True), "rtn asym 16": rtn(16, False), "rtn asym 32": rtn(32, False),
        "rtn asym 64": rtn(64, False), "hqq 32": lambda: mnq.HQQWeightOnlyQuantConfig(block_size=32),
        "hqq 64": lambda: mnq.HQQWeightOnlyQuantConfig(block_size=64),
    }


def dequantized(weight: np.ndarray, config: Any) -> np.ndarray:
    """W as one quantized MatMulNBits node computes it: x @ W.T run on the identity."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    wt = np.ascontiguousarray(weight.T.astype(np.float32))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, wt.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, wt.shape[1]])],
        [numpy_helper.from_array(wt, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    quantizer = mnq.MatMulNBitsQuantizer(model, algo_config=config)
    quantizer.process()
    proto: onnx.ModelProto = quantizer.model.model
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.eye(wt.shape[0], dtype=np.float32)})[0].T


def table(folders: dict[str, Path]) -> list[dict[str, Any]]:
    """One row per (model, layer, recipe) with the relative weight error."""
    from safetensors.numpy import load_file

    rows = []
    for model, folder in folders.items():
        weights = load_file(str(folder / "model.safetensors"))
        for layer in LAYERS[model]:
            w = weights[layer].astype(np.float32)
            for name, config in recipes().items():
                error = float(np.linalg.norm(w - dequantized(w, config())) / np.linalg.norm(w))
                rows.append({"model": model, "layer": layer, "recipe": name, "relative_error": error})
    return rows


def main() -> None:
    """Print the table as markdown."""
    logging.disable(logging.WARNING)  # the quantizer logs every node
    rows = table({"smollm2": smollm2_folder(), "whisper-base": whisper_base_folder()})
    names = list(recipes())
    print("| model | layer | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for model, layers in LAYERS.items():
        for layer in layers:
            errors = {r["recipe"]: r["relative_error"] for r in rows if r["model"] == model and r["layer"] == layer}
            print(f"| {model} | {layer.removesuffix('.weight')} | " + " | ".join(f"{errors[n]:.4f}" for n in names) + " |")


if __name__ == "__main__":
    main()
