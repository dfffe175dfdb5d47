"""Weight-only recipes (--q4-method, --block-size, --calibration): manifest, graph, errors, and generation;
mixed precision (rtn-mixed, the default: the sensitive MatMuls at 8 bits)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("optimum.exporters.onnx")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402
from support import checkpoints  # noqa: E402

import onnxpipe  # noqa: E402
from onnxpipe_export import cli, export  # noqa: E402
from onnxpipe_export.errors import ExportOptionError  # noqa: E402
from onnxpipe_export.weight_only import quantize_weight_only  # noqa: E402
from onnxpipe_export.weight_only_calibration import calibration_windows  # noqa: E402
from onnxpipe_export.weight_only_mixed import eight_bit_matmuls  # noqa: E402
from onnxpipe_export.weight_only_recipes import DEFAULT_Q4_METHOD, WeightOnlyRecipe, weight_only_options  # noqa: E402

PROMPT = "Hello, my dog is cute"


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _nodes(path: Path, op: str) -> list:
    return [n for n in onnx.load(str(path)).graph.node if n.op_type == op]


@pytest.fixture(scope="module")
def llama_recipes(generation_models, tmp_path_factory) -> dict:
    """The tiny Llama (tied head) exported fp32 once; each recipe's q4 file written beside it in its own folder
    (rtn-asym is the CLI export's below). "head+down": rtn with the LM head and down projections at 8 bits."""
    exported = generation_models.get("llama")
    root = tmp_path_factory.mktemp("recipes")
    windows = calibration_windows(generation_models.checkpoint("llama"), "builtin")
    recipes = {method: WeightOnlyRecipe(method=method, block_size=16) for method in ("rtn-mixed", "rtn", "kquant", "hqq", "gptq")}
    recipes["head+down"] = WeightOnlyRecipe(method="rtn", block_size=16, keep_8bit=("lm_head", "down_proj"))
    folders = {}
    for name, recipe in recipes.items():
        folder = root / name
        shutil.copytree(exported.onnx, folder)
        entry = quantize_weight_only(folder / "model.onnx", folder / "model_q4.onnx", recipe, windows if name == "gptq" else None)
        folders[name] = (folder, entry)
    return folders


@pytest.fixture(scope="module")
def cli_export(generation_models, tmp_path_factory) -> Path:
    """The tiny Llama through the CLI with every flag: q4 by rtn-asym in blocks of 16, and int8."""
    out = tmp_path_factory.mktemp("cli") / "llama"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main([
            str(generation_models.checkpoint("llama")), "--task", "text-generation", "--dtype", "q4,int8",
            "--q4-method", "rtn-asym", "--block-size", "16", "--no-validate", "--output", str(out), "--quiet",
        ]) == 0
    return out


def test_flags_land_in_manifest_and_graph(cli_export: Path) -> None:
    files = json.loads((cli_export / "onnxpipe.json").read_text())["files"]
    q4, int8 = files["model_q4.onnx"]["quantization"], files["model_quantized.onnx"]["quantization"]
    assert (q4["algorithm"], q4["bits"], q4["block_size"], q4["symmetric"], q4["zero_points"]) == ("rtn-asym", 4, 16, False, "uint4")
    assert (int8["algorithm"], int8["bits"], int8["block_size"], int8["symmetric"]) == ("rtn", 8, 16, True)
    assert q4["embedding"] == "shared with the tied LM head"
    assert int8["embedding"].startswith("fp32") and int8["op_types"] == ["MatMul"]  # the quality file keeps the table
    for name, inputs in (("model_q4.onnx", 4), ("model_quantized.onnx", 3)):  # zero points only when asymmetric
        matmuls = _nodes(cli_export / name, "MatMulNBits")
        assert matmuls and all(_attrs(n)["block_size"] == 16 and _attrs(n)["accuracy_level"] == 4 for n in matmuls)
        assert all(len(n.input) == inputs for n in matmuls)
    gathers = _nodes(cli_export / "model_q4.onnx", "GatherBlockQuantized")
    assert len(gathers) == 1 and _attrs(gathers[0])["block_size"] == 16
    head = next(n for n in _nodes(cli_export / "model_q4.onnx", "MatMulNBits") if "lm_head" in n.name)
    assert gathers[0].input[0] == head.input[1]  # the lookup reads the head's 4-bit table: no fp32 copy
    model = onnx.load(str(cli_export / "model_q4.onnx"))
    assert not any(init.name == "model.embed_tokens.weight" for init in model.graph.initializer)
    assert not _nodes(cli_export / "model_quantized.onnx", "GatherBlockQuantized")


def test_quantized_lookup_matches_the_dequantized_head(cli_export: Path, generation_models) -> None:
    """GatherBlockQuantized rows equal the LM head's dequantized weights (same bits, same zero points)."""
    model = onnx.load(str(cli_export / "model_q4.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    head = next(n for n in model.graph.node if n.op_type == "MatMulNBits" and "lm_head" in n.name)
    attrs = _attrs(head)
    packed, scales, zero_points = inits[head.input[1]], inits[head.input[2]], inits[head.input[3]]
    n, blocks = attrs["N"], attrs["K"] // 16
    values = np.stack([packed & 15, packed >> 4], -1).reshape(n, blocks, 16).astype(np.float32)
    points = np.stack([zero_points & 15, zero_points >> 4], -1).reshape(n, -1)[:, :blocks].astype(np.float32)
    table = ((values - points[..., None]) * scales.reshape(n, blocks)[..., None]).reshape(n, -1)
    gather = next(n for n in model.graph.node if n.op_type == "GatherBlockQuantized")
    probe = helper.make_model(
        helper.make_graph([gather], "probe", [helper.make_tensor_value_info(gather.input[1], onnx.TensorProto.INT64, [1, None])],
                          [helper.make_tensor_value_info(gather.output[0], onnx.TensorProto.FLOAT, None)],
                          [i for i in model.graph.initializer if i.name in gather.input]),
        opset_imports=list(model.opset_import), ir_version=model.ir_version,
    )
    ids = np.array([[0, 5, 17, n - 1]], dtype=np.int64)
    rows = ort.InferenceSession(probe.SerializeToString()).run(None, {gather.input[1]: ids})[0].reshape(4, -1)
    assert np.abs(rows - table[ids[0]]).max() < 1e-6


@pytest.mark.parametrize("method", ["rtn-mixed", "rtn", "kquant", "hqq", "gptq"])
def test_each_recipe_writes_its_file(llama_recipes, method: str) -> None:
    folder, entry = llama_recipes[method]
    assert entry["algorithm"] == method and entry["block_size"] == 16 and entry["quantized_matmuls"] == 15
    assert entry["embedding"] == ("quantized on its own (round-to-nearest)" if method == "hqq" else "shared with the tied LM head")
    matmuls = _nodes(folder / "model_q4.onnx", "MatMulNBits")
    assert all(_attrs(n).get("accuracy_level") == 4 for n in matmuls)
    # rtn-mixed: the tiny Llama has 2 layers, both edge layers, so every MatMul stays at 8 bits
    assert {_attrs(n)["bits"] for n in matmuls} == ({8} if method == "rtn-mixed" else {4})
    assert ("calibration" in entry) == (method == "gptq") and ("eight_bit" in entry) == (method == "rtn-mixed")
    if method == "gptq":
        assert entry["calibration"] == "builtin"


def test_mixed_keeps_the_chosen_matmuls_at_8_bits(llama_recipes) -> None:
    """LM head + down projections at 8 bits, the rest at 4; the token lookup reads the 8-bit head table."""
    folder, entry = llama_recipes["head+down"]
    assert entry["eight_bit"] == ["lm_head", "down_proj"] and entry["eight_bit_matmuls"] == 3
    matmuls = _nodes(folder / "model_q4.onnx", "MatMulNBits")
    eight = sorted(n.name for n in matmuls if _attrs(n)["bits"] == 8)
    assert len(matmuls) == 15 and len(eight) == 3
    assert all("lm_head" in name or "down_proj" in name for name in eight)
    head = next(n for n in matmuls if "lm_head" in n.name)
    gather = _nodes(folder / "model_q4.onnx", "GatherBlockQuantized")[0]
    assert _attrs(gather)["bits"] == 8 and gather.input[0] == head.input[1]
    assert DEFAULT_Q4_METHOD == "rtn-mixed" and weight_only_options().recipe(4).eight_bit_roles == (
        "lm_head", "attention", "down_proj", "edge_layers")
    assert weight_only_options().recipe(8).eight_bit_roles == ()


def test_eight_bit_roles_by_node_name() -> None:
    """Roles found in Llama, GPT-2 and Whisper node names; the head by the `logits` output it writes."""
    names = ["/model/layers.0/self_attn/v_proj/MatMul", "/model/layers.0/mlp/down_proj/MatMul",
             "/transformer/h.3/mlp/c_proj/Gemm_MatMul", "/model/decoder/layers.5/fc2/MatMul",
             "/model/layers.2/mlp/up_proj/MatMul", "/lm_head/MatMul", "/transformer/h.3/attn/c_attn/Gemm_MatMul",
             "/model/decoder/layers.5/encoder_attn/q_proj/MatMul", "/model/layers.2/self_attn/o_proj/MatMul"]
    nodes = [helper.make_node("MatMul", ["x", f"w{i}"], ["logits" if "lm_head" in n else f"y{i}"], name=n)
             for i, n in enumerate(names)]
    inits = [numpy_helper.from_array(np.zeros((2, 2), np.float32), f"w{i}") for i in range(len(names))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, None)], inits)
    assert eight_bit_matmuls(graph, ["lm_head"]) == ["/lm_head/MatMul"]
    assert eight_bit_matmuls(graph, ["down_proj"]) == names[1:4]
    assert eight_bit_matmuls(graph, ["v_proj"]) == names[:1]
    assert eight_bit_matmuls(graph, ["edge_layers"]) == names[:2] + names[3:4] + names[7:8]  # layers.0, layers.5
    assert eight_bit_matmuls(graph, ["attention"]) == [names[0], *names[6:]]
    with pytest.raises(ValueError, match="Unknown 8-bit roles"):
        eight_bit_matmuls(graph, ["mlp"])


@pytest.mark.parametrize("method", ["rtn-mixed", "hqq", "gptq"])
def test_each_recipe_generates_close_to_fp32(llama_recipes, method: str) -> None:
    folder, _ = llama_recipes[method]
    fp32 = onnxpipe.pipeline("text-generation", model=str(folder), dtype="fp32")
    q4 = onnxpipe.pipeline("text-generation", model=str(folder), dtype="q4")
    kwargs = dict(max_new_tokens=8, min_new_tokens=8, do_sample=False, return_tensors=True)
    ours, reference = q4(PROMPT, **kwargs)[0]["generated_token_ids"], fp32(PROMPT, **kwargs)[0]["generated_token_ids"]
    assert len(ours) == len(reference)
    # 4-bit weights of a random 64-wide model move its logits a lot: greedy tokens stay close, not equal
    assert ours[: len(ours) - 8] == reference[: len(reference) - 8]  # the prompt
    session_fp32, session_q4 = (ort.InferenceSession(str(folder / f)) for f in ("model.onnx", "model_q4.onnx"))
    ids = np.array([[5, 60, 7, 30, 9, 11, 40, 2, 19, 23]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "position_ids": np.arange(10)[None]}
    feeds.update({i.name: np.zeros((1, i.shape[1], 0, i.shape[3]), np.float32)
                  for i in session_fp32.get_inputs() if i.name.startswith("past_key_values.")})
    a, b = (s.run(["logits"], feeds)[0].ravel() for s in (session_fp32, session_q4))
    assert np.corrcoef(a, b)[0, 1] > 0.8  # measured 0.90 (rtn) to 0.96


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(q4_method="awq"), "Unknown q4 method 'awq'; choose one of rtn-mixed, rtn, rtn-asym"),
        (dict(block_size=48), "Block size 48 is not supported; choose one of 16, 32, 64, 128"),
        (dict(calibration="builtin"), "uses no calibration data"),
        (dict(q4_method="gptq", calibration="/no/such.txt"), "does not exist"),
        (dict(q4_method="hqq", dtypes=("int8",)), "no q4 file is asked for"),
        (dict(block_size=32, dtypes=("fp32", "fp16")), "neither is asked for"),
        (dict(q4_method="gptq", encoder_decoder=True), "calibrates decoder-only models"),
    ],
)
def test_bad_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ExportOptionError, match=message.replace("(", r"\(")):
        weight_only_options(**{"dtypes": ("q4",), **kwargs})


def test_other_tasks_refuse_the_flags(tmp_path: Path, generation_models) -> None:
    bert_cls = checkpoints.build_checkpoint("bert", "sequence-classification", tmp_path / "bert")
    with pytest.raises(ExportOptionError, match="text-classification does not take them"):
        export(bert_cls, "text-classification", tmp_path / "a", ["int8"], block_size=32)
    with pytest.raises(ExportOptionError, match="calibrates decoder-only models"):
        export(generation_models.checkpoint("t5"), "text2text-generation", tmp_path / "b", ["q4"], q4_method="gptq")
    assert cli.main([str(bert_cls), "--task", "text-classification", "--q4-method", "hqq", "-o", str(tmp_path / "c")]) == 2
    assert cli.main([str(bert_cls), "--task", "text-generation", "--q4-method", "nope", "-o", str(tmp_path / "d")]) == 2


def test_untied_table_is_quantized_on_its_own(generation_models, tmp_path: Path) -> None:
    """T5's decoder reads an untied embedding: its lookup gets its own 4-bit table, rows close to fp32."""
    folder = tmp_path / "t5"
    export(generation_models.checkpoint("t5"), "text2text-generation", folder, ["q4"], quiet=True, validate=False,
           q4_method="rtn", block_size=16)
    entry = json.loads((folder / "onnxpipe.json").read_text())["files"]["decoder_model_merged_q4.onnx"]["quantization"]
    assert entry["embedding"] == "quantized on its own (round-to-nearest)" and entry["merged_after_conversion"]
