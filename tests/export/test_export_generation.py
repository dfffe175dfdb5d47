"""Export of generation models (GPT-2, Llama with GQA, T5, BART, Marian): files, manifest, parity with torch, errors."""

from __future__ import annotations

import json
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("optimum.exporters.onnx")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from support import checkpoints, tiny_tokenizers  # noqa: E402
from support import generation_checkpoints as gc  # noqa: E402

from onnxpipe.errors import IntegrityError  # noqa: E402
from onnxpipe.manifest import sha256_file  # noqa: E402
from onnxpipe.model_folder import ModelFolder  # noqa: E402
from onnxpipe_export import (  # noqa: E402
    cli,
    export,
    generative_validate,  # noqa: E402
)
from onnxpipe_export.errors import ExportQualityWarning, UnsupportedDtypeError, UnsupportedTaskError, ValidationError  # noqa: E402

ARCHS = list(gc.GENERATION_ARCHS)
COMPONENTS = {
    "gpt2": {"decoder": "model"},
    "llama": {"decoder": "model"},
    "t5": {"encoder": "encoder_model", "decoder": "decoder_model_merged"},
    "bart": {"encoder": "encoder_model", "decoder": "decoder_model_merged"},
    "marian": {"encoder": "encoder_model", "decoder": "decoder_model_merged"},
}
SUFFIX = {"fp32": "", "int8": "_quantized", "fp16": "_fp16", "q4": "_q4"}


def _torch_model(folder: Path):
    config = transformers.AutoConfig.from_pretrained(str(folder))
    auto = transformers.AutoModelForSeq2SeqLM if config.is_encoder_decoder else transformers.AutoModelForCausalLM
    return auto.from_pretrained(str(folder)).eval()


# --------------------------------------------------------------------------- the tiny checkpoints


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_checkpoints_generate_prompt_dependent_text(generation_models, arch: str) -> None:
    """Greedy output is not EOS at once, not one repeated token, and differs between prompts."""
    folder = generation_models.checkpoint(arch)
    config = json.loads((folder / "config.json").read_text())
    outputs = gc.greedy_tokens(folder)
    eos = config["eos_token_id"]
    first = 1 if config.get("is_encoder_decoder") else 0  # encoder-decoders start with decoder_start_token_id
    for tokens in outputs:
        assert tokens[first] != eos
        assert len(set(tokens[first:])) >= 2
    assert sum(len(t) - first >= 8 for t in outputs) >= len(outputs) - 2  # EOS may come, but not early everywhere
    assert len({tuple(t) for t in outputs}) >= len(outputs) - 1
    assert (folder / "generation_config.json").is_file()


def test_tiny_checkpoints_are_deterministic(tmp_path: Path, generation_models) -> None:
    for arch in ("gpt2", "marian"):
        again = gc.build_generation_checkpoint(arch, tmp_path / arch)
        first = generation_models.checkpoint(arch)
        assert sha256_file(again / "model.safetensors") == sha256_file(first / "model.safetensors")


def test_llama_checkpoint_has_gqa_and_chat_template(generation_models) -> None:
    folder = generation_models.checkpoint("llama")
    config = json.loads((folder / "config.json").read_text())
    assert config["num_key_value_heads"] < config["num_attention_heads"]
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and "<|im_start|>user\nHi<|im_end|>" in text
    assert "token_type_ids" not in tok("Hi")


def test_t5_checkpoint_has_task_prefixes(generation_models) -> None:
    config = json.loads((generation_models.checkpoint("t5") / "config.json").read_text())
    assert config["task_specific_params"]["translation_en_to_de"]["prefix"] == "translate English to German: "
    assert config["task_specific_params"]["summarization"]["prefix"] == "summarize: "


# --------------------------------------------------------------------------- the export folders


@pytest.mark.parametrize("arch", ARCHS)
def test_export_writes_named_files_and_manifest(generation_models, arch: str) -> None:
    exported = generation_models.get(arch)
    manifest = json.loads((exported.onnx / "onnxpipe.json").read_text())
    components = COMPONENTS[arch]
    expected = {f"{stem}{SUFFIX[d]}.onnx" for stem in components.values() for d in ("fp32", "int8")}
    assert set(manifest["files"]) == expected
    assert manifest["task"] == gc.ARCH_TASK[arch]
    assert manifest["components"] == components
    assert manifest["is_encoder_decoder"] == (arch not in gc.DECODER_ONLY)
    assert manifest["optimization"]["fusion"] is False and manifest["optimization"]["reason"].startswith("not fused")
    assert manifest["export"]["optimum_task"].endswith("-with-past")
    for name in ("generation_config.json", "tokenizer.json", "config.json"):
        assert name in manifest["support_files"] and (exported.onnx / name).is_file()
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_file(exported.onnx / name)
        assert entry["component"] in components
        figures = entry["validation"]
        assert figures["prompts"] == len(generative_validate.VALIDATION_PROMPTS)
        assert figures["new_tokens"] == generative_validate.NEW_TOKENS
        if entry["dtype"] == "fp32":
            assert figures["passed"] is True and figures["greedy_agreement"] == 1.0
            assert figures["logits_relative_diff"] <= generative_validate.FP32_RELATIVE_TOLERANCE
            assert figures["cached_steps_compared"] > 0
        else:
            assert figures["tolerance"] is None and 0.0 <= figures["greedy_agreement"] <= 1.0
    decoder = ort.InferenceSession(str(exported.onnx / f"{components['decoder']}.onnx"))
    names = [i.name for i in decoder.get_inputs()]
    assert "past_key_values.0.key" in names or "past_key_values.0.decoder.key" in names
    assert ("use_cache_branch" in names) == (arch not in gc.DECODER_ONLY)
    if arch == "llama":
        assert "chat_template.jinja" in manifest["support_files"] or "chat_template" in json.loads(
            (exported.onnx / "tokenizer_config.json").read_text()
        )
        assert "position_ids" in names
        key = next(i for i in decoder.get_inputs() if i.name == "past_key_values.0.key")
        config = json.loads((exported.onnx / "config.json").read_text())
        assert key.shape[1] == config["num_key_value_heads"]  # the cache holds the grouped heads
    assert not (exported.onnx / "decoder_model.onnx").exists()
    assert not (exported.onnx / "decoder_with_past_model.onnx").exists()


def test_runtime_model_folder_checks_the_sha256(generation_models, tmp_path: Path) -> None:
    folder = ModelFolder.open(generation_models.get("t5").onnx)
    assert folder.variants("decoder_model_merged") == {
        "fp32": "decoder_model_merged.onnx", "int8": "decoder_model_merged_quantized.onnx"
    }
    assert folder.onnx_file("int8", stem="encoder_model").name == "encoder_model_quantized.onnx"
    copy = tmp_path / "t5"
    shutil.copytree(generation_models.get("t5").onnx, copy)
    path = copy / "decoder_model_merged.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="decoder_model_merged.onnx"):
        ModelFolder.open(copy).onnx_file("fp32", stem="decoder_model_merged")


# --------------------------------------------------------------------------- logits parity, with and without cache


def _feeds(session, values: dict) -> dict:
    names = {i.name for i in session.get_inputs()}
    return {k: v for k, v in values.items() if k in names}


def _empty_past(session) -> dict:
    return {
        i.name: np.zeros((1, i.shape[1], 0, i.shape[3]), dtype=np.float32)
        for i in session.get_inputs() if i.name.startswith("past_key_values.")
    }


def _present(session, outputs, keep: dict | None = None) -> dict:
    named = dict(zip([o.name for o in session.get_outputs()], outputs))
    past = {"past_key_values." + k[len("present."):]: v for k, v in named.items() if k.startswith("present.")}
    if keep:  # the cross-attention cache of the first step
        past.update({k: v for k, v in keep.items() if ".encoder." in k})
    return past


@pytest.mark.parametrize("arch", ARCHS)
def test_fp32_logits_equal_torch_with_and_without_past(generation_models, arch: str) -> None:
    """Whole-sequence logits (no cache) and step-by-step logits (cache) both match torch's full forward."""
    exported = generation_models.get(arch)
    model = _torch_model(generation_models.checkpoint(arch))
    tok = transformers.AutoTokenizer.from_pretrained(str(generation_models.checkpoint(arch)))
    prompt = np.asarray(tok(gc.GENERATION_PROMPTS[2])["input_ids"], dtype=np.int64)[None]
    follow = [5, 17, 42]  # tokens fed after the prompt (decoder-only) or after the start token (encoder-decoder)
    decoder = ort.InferenceSession(str(exported.onnx / f"{COMPONENTS[arch]['decoder']}.onnx"))
    if arch in gc.DECODER_ONLY:
        ids = np.concatenate([prompt, np.array([follow])], axis=1)
        with torch.no_grad():
            expected = model(torch.from_numpy(ids)).logits[0].numpy()
        n = ids.shape[1]
        full = decoder.run(None, _feeds(decoder, {
            "input_ids": ids, "attention_mask": np.ones_like(ids), "position_ids": np.arange(n)[None],
            **_empty_past(decoder)}))
        steps, past, start = [], _empty_past(decoder), 0
        for chunk in (prompt, *(np.array([[t]]) for t in follow)):
            end = start + chunk.shape[1]
            out = decoder.run(None, _feeds(decoder, {
                "input_ids": chunk, "attention_mask": np.ones((1, end), dtype=np.int64),
                "position_ids": np.arange(start, end)[None], **past}))
            steps.append(out[0][0, -1])
            past, start = _present(decoder, out), end
        cached = np.stack(steps[1:])
        expected_cached = expected[prompt.shape[1]:]
    else:
        encoder = ort.InferenceSession(str(exported.onnx / "encoder_model.onnx"))
        start_token = model.config.decoder_start_token_id
        dec_ids = np.array([[start_token, *follow]], dtype=np.int64)
        with torch.no_grad():
            expected = model(input_ids=torch.from_numpy(prompt), decoder_input_ids=torch.from_numpy(dec_ids)).logits[0].numpy()
        mask = np.ones_like(prompt)
        hidden = encoder.run(None, {"input_ids": prompt, "attention_mask": mask})[0]
        common = {"encoder_hidden_states": hidden, "encoder_attention_mask": mask}
        full = decoder.run(None, _feeds(decoder, {
            "input_ids": dec_ids, **common, **_empty_past(decoder), "use_cache_branch": np.array([False])}))
        steps, past = [], _empty_past(decoder)
        for i, token in enumerate([start_token, *follow]):
            out = decoder.run(None, _feeds(decoder, {
                "input_ids": np.array([[token]]), **common, **past, "use_cache_branch": np.array([i > 0])}))
            steps.append(out[0][0, -1])
            past = _present(decoder, out, keep=past if i > 0 else None)
        cached = np.stack(steps)
        expected_cached = expected
    tolerance = 1e-4 * max(1.0, float(np.abs(expected).max()))  # T5's logits reach ~90 at this init
    assert np.abs(full[0][0] - expected).max() <= tolerance
    assert np.abs(cached - expected_cached).max() <= tolerance
    assert float(np.std(expected[-1])) > 0.1  # the logits are not flat


# --------------------------------------------------------------------------- Marian's tokenizer.json


def test_marian_tokenizer_json_matches_marian_tokenizer(generation_models) -> None:
    from tokenizers import Tokenizer

    exported = generation_models.get("marian")
    fast = Tokenizer.from_file(str(exported.onnx / "tokenizer.json"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slow = transformers.MarianTokenizer.from_pretrained(str(generation_models.checkpoint("marian")))
    texts = list(gc.GENERATION_PROMPTS) + list(tiny_tokenizers.CORPUS) + ["  spaced   out  ", "", "x </s> y"]
    for text in texts:
        assert fast.encode(text).ids == slow(text)["input_ids"], text
    rng = random.Random(1)
    for _ in range(300):
        ids = [rng.randrange(len(slow)) for _ in range(rng.randint(1, 30))]
        assert fast.decode(ids, skip_special_tokens=True).strip() == slow.decode(ids, skip_special_tokens=True), ids
    manifest = json.loads((exported.onnx / "onnxpipe.json").read_text())
    assert manifest["tokenizer_conversion"]["converted_from"].startswith("MarianTokenizer")
    assert manifest["tokenizer_conversion"]["decode_strip"] is True
    assert {"source.spm", "target.spm", "vocab.json"} <= set(manifest["support_files"])


# --------------------------------------------------------------------------- fp16 and q4


@pytest.fixture(scope="module")
def reduced(generation_models, tmp_path_factory) -> dict:
    """GPT-2 through the CLI and T5 through the API, each with fp16 + q4 (fp32 is always written)."""
    root = tmp_path_factory.mktemp("reduced")
    gpt2 = root / "gpt2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main([str(generation_models.checkpoint("gpt2")), "--task", "text-generation",
                         "--dtype", "fp16,q4", "--output", str(gpt2), "--quiet"]) == 0
        result = export(generation_models.checkpoint("t5"), "text2text-generation", root / "t5", ["q4", "fp16"], quiet=True)
    return {"gpt2": gpt2, "t5": result.output}


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_fp16_and_q4_variants(reduced, arch: str) -> None:
    folder = reduced[arch]
    manifest = json.loads((folder / "onnxpipe.json").read_text())
    stems = COMPONENTS[arch].values()
    assert set(manifest["files"]) == {f"{s}{SUFFIX[d]}.onnx" for s in stems for d in ("fp32", "fp16", "q4")}
    assert manifest["default_dtype"] == ("fp16" if arch == "gpt2" else "q4")
    for stem in stems:
        q4 = manifest["files"][f"{stem}_q4.onnx"]
        assert q4["quantization"]["method"] == "MatMulNBits" and q4["quantization"]["block_size"] == 32
        assert q4["quantization"]["symmetric"] is True and q4["quantization"]["quantized_matmuls"] > 0
        ops = {n.op_type for n in onnx.load(str(folder / f"{stem}_q4.onnx")).graph.node}
        if stem == "decoder_model_merged":  # the branches hold the MatMulNBits nodes; one If picks the branch
            assert ops == {"If"}
        else:
            assert "MatMulNBits" in ops
        assert q4["quantization"].get("merged_after_conversion", False) == (stem == "decoder_model_merged")
        fp16 = manifest["files"][f"{stem}_fp16.onnx"]
        assert all(i["type"] == "float32" for i in fp16["inputs"] if i["name"].startswith(("past", "encoder_hidden")))
        assert all(o["type"] == "float32" for o in fp16["outputs"])
    decoder = manifest["files"][f"{COMPONENTS[arch]['decoder']}_fp16.onnx"]["validation"]
    # Measured on these tiny random checkpoints (large init, so outputs are sensitive): fp16 logits relative
    # diff 0.0012 (GPT-2) / 0.38 (T5, whose logits reach ~90 and overflow-prone fp16 activations); q4 0.23 / 0.89.
    # Reduced precision is reported, never refused; GPT-2's fp16 must still follow torch.
    if arch == "gpt2":
        assert decoder["logits_relative_diff"] < 0.01 and decoder["greedy_agreement"] >= 0.9
    for dtype in ("fp16", "q4"):
        figures = manifest["files"][f"{COMPONENTS[arch]['decoder']}{SUFFIX[dtype]}.onnx"]["validation"]
        assert figures["tolerance"] is None and figures["logits_relative_diff"] > 0


def test_int8_quality_on_gpt2(generation_models) -> None:
    figures = json.loads((generation_models.get("gpt2").onnx / "onnxpipe.json").read_text())["files"][
        "model_quantized.onnx"]["validation"]
    # Measured: relative diff 0.028, greedy agreement 0.78 (tiny random GPT-2, hidden 32, init 0.2).
    assert 0 < figures["logits_relative_diff"] < 0.1
    assert figures["greedy_agreement"] >= 0.5


# --------------------------------------------------------------------------- errors


def test_encoder_decoder_for_text_generation_is_refused(generation_models, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedTaskError, match="encoder-decoder.*text2text-generation"):
        export(generation_models.checkpoint("t5"), "text-generation", tmp_path / "out", quiet=True)
    with pytest.raises(UnsupportedTaskError, match="not an encoder-decoder.*text-generation"):
        export(generation_models.checkpoint("gpt2"), "summarization", tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def test_unsupported_architecture_for_generation_is_refused(tmp_path: Path) -> None:
    bert = checkpoints.build_checkpoint("bert", "masked-lm", tmp_path / "bert")
    with pytest.raises(UnsupportedTaskError, match="'bert' is not supported for text-generation with a KV cache"):
        export(bert, "text-generation", tmp_path / "out", quiet=True)


def test_unknown_dtype_for_generation_is_refused(generation_models, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedDtypeError, match="fp32, int8, fp16, q4"):
        export(generation_models.checkpoint("gpt2"), "text-generation", tmp_path / "out", ["int3"], quiet=True)
    assert cli.main([str(generation_models.checkpoint("gpt2")), "--task", "text-generation", "--dtype", "int3",
                     "-o", str(tmp_path / "o")]) == 2


def test_fp32_outside_tolerance_writes_nothing(generation_models, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(generative_validate, "FP32_RELATIVE_TOLERANCE", 0.0)
    with pytest.raises(ValidationError, match="fp32 ONNX export differs from torch"):
        export(generation_models.checkpoint("llama"), "text-generation", tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def test_quality_warning_for_a_drifting_variant() -> None:
    figures = {"greedy_agreement": 0.25, "new_tokens": 16, "logits_relative_diff": 0.3}
    assert "25%" in generative_validate.quality_warning("model_q4.onnx", figures)
    assert generative_validate.quality_warning("model_q4.onnx", {**figures, "greedy_agreement": 0.9}) is None
    assert issubclass(ExportQualityWarning, UserWarning)


def test_missing_generation_config_is_derived_validation_and_fusion_can_be_skipped(generation_models, tmp_path: Path) -> None:
    checkpoint = tmp_path / "gpt2"
    shutil.copytree(generation_models.checkpoint("gpt2"), checkpoint)
    (checkpoint / "generation_config.json").unlink()
    result = export(checkpoint, "text-generation", tmp_path / "out", quiet=True, validate=False, optimize=False)
    written = json.loads((tmp_path / "out" / "generation_config.json").read_text())
    config = json.loads((checkpoint / "config.json").read_text())
    assert written["eos_token_id"] == config["eos_token_id"] and written["bos_token_id"] == config["bos_token_id"]
    assert result.manifest["validation"] is None and result.manifest["files"]["model.onnx"]["validation"] is None
    assert result.manifest["optimization"] == {"fusion": False, "reason": "turned off by optimize=False (--no-optimize)"}


def test_q4_graph_rewrites_are_exact(generation_models) -> None:
    """The fp32 file's tied head (FusedMatMul on the embedding) turned back into Transpose + MatMul, Gemm -> MatMul +
    Add and the folded LM-head transpose (all done before 4-bit quantization) change nothing in fp32."""
    from onnxpipe_export.tied_weights import unfuse_transposed_weights
    from onnxpipe_export.weight_only import _fold_weight_transposes, _gemms_to_matmuls

    path = generation_models.get("gpt2").onnx / "model.onnx"
    model = onnx.load(str(path))
    assert [n.op_type for n in model.graph.node].count("FusedMatMul") == 1  # written by the export
    assert unfuse_transposed_weights(model.graph) == 1
    assert _gemms_to_matmuls(model.graph) == 8 and _fold_weight_transposes(model.graph) == 1
    initializers = {init.name for init in model.graph.initializer}
    assert not any(n.op_type == "Gemm" for n in model.graph.node)
    assert all(n.input[1] in initializers for n in model.graph.node if n.op_type == "MatMul" and "lm_head" in n.name)
    before, after = ort.InferenceSession(str(path)), ort.InferenceSession(model.SerializeToString())
    ids = np.array([[5, 60, 7, 300, 9]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "position_ids": np.arange(5)[None], **_empty_past(before)}
    assert np.abs(before.run(None, feeds)[0] - after.run(None, feeds)[0]).max() <= 1e-6
