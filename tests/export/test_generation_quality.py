"""Measured generation quality at export (generative_quality.py): teacher-forced figures per variant against torch
fp32 in the manifest, quality.npz references, the summary's figures and warnings, fp32 held to torch."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("optimum.exporters.onnx")

import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from onnxpipe.manifest import sha256_file  # noqa: E402
from onnxpipe.quality import QUALITY_NAME, load_quality_references  # noqa: E402
from onnxpipe_export import generative_quality as gq  # noqa: E402
from onnxpipe_export.errors import ValidationError  # noqa: E402
from onnxpipe_export.summary import format_summary  # noqa: E402

FIGURES = {"tokens", "nll", "nll_torch", "nll_increase", "top1_agreement"}


@pytest.fixture(scope="module")
def llama(generation_models):
    """Tiny Llama (chat template) exported with fp32, int8 and all-4-bit q4: the default q4 recipe (rtn-mixed) keeps
    the first and last layers at 8 bits, which on a two-layer model is every layer, so q4 would equal int8."""
    return generation_models.with_dtypes("llama", ("fp32", "int8", "q4"), q4_method="rtn")


def _manifest(folder):
    return json.loads((folder / "onnxpipe.json").read_text())


def test_manifest_carries_figures_for_every_variant(llama):
    manifest = _manifest(llama)
    block = manifest["quality"]
    assert list(block["texts"]) == ["text", "chat"] and block["skipped"] == {}
    assert block["references"] == {"file": QUALITY_NAME, "sha256": sha256_file(llama / QUALITY_NAME), "size": (llama / QUALITY_NAME).stat().st_size}
    assert block["measured_on"]["class"] and block["warn_below"]["top1_agreement"]["q4"] == gq.WARN_MIN_AGREEMENT["q4"]
    figures = {entry["dtype"]: entry["quality"] for entry in manifest["files"].values()}
    assert set(figures) == {"fp32", "int8", "q4"}
    for entry in figures.values():
        assert FIGURES <= set(entry) and FIGURES <= set(entry["text"]) and FIGURES <= set(entry["chat"])
        assert entry["tokens"] == entry["text"]["tokens"] + entry["chat"]["tokens"] == sum(t["tokens"] for t in block["texts"].values())
        assert entry["acceptance"] == [
            {"figure": "top1_agreement", "at_least": round(entry["top1_agreement"] - 0.02, 6)},
            {"figure": "nll_increase", "at_most": round(entry["nll_increase"] + 0.01, 6)},
        ]
    fp32, q4 = figures["fp32"], figures["q4"]
    assert fp32["top1_agreement"] == 1.0
    assert abs(fp32["nll"] - fp32["nll_torch"]) <= 1e-4 and abs(fp32["nll_increase"]) <= 1e-5
    # measured on the tiny random Llama (hidden 64, init 0.2): int8 0.94, q4 0.41 top-1 agreement
    assert q4["top1_agreement"] < figures["int8"]["top1_agreement"] < fp32["top1_agreement"]
    assert abs(q4["nll_increase"]) > abs(fp32["nll_increase"])


def test_references_are_torch_fp32_and_the_model_depends_on_its_input(llama, generation_models):
    """quality.npz holds the texts' ids and torch's per-position NLL and top-1, recomputed here from torch directly;
    torch's top choices vary along the text (a model that always picks one token would agree trivially)."""
    checkpoint = generation_models.checkpoint("llama")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(checkpoint)).eval()
    text, chat = load_quality_references(llama / QUALITY_NAME, ["text", "chat"])
    assert text.input_ids[0].tolist() == tokenizer(gq.QUALITY_TEXT)["input_ids"][:128]  # the position table's 128
    rendered = tokenizer.apply_chat_template(list(gq.QUALITY_CHAT), tokenize=True)
    assert chat.input_ids[0].tolist() == list(rendered)[:128] and text.source_ids is None
    for item in (text, chat):
        with torch.no_grad():
            log_probs = torch.log_softmax(model(torch.from_numpy(item.input_ids)).logits[0, :-1].double(), -1).numpy()
        following = item.input_ids[0, 1:]
        np.testing.assert_allclose(item.nll, -log_probs[np.arange(len(following)), following], atol=1e-5)
        assert (item.top1 == log_probs.argmax(-1)).all()
        assert len(set(item.top1.tolist())) >= 20 and item.tokens == len(following)


def test_fp32_figures_match_a_plain_onnxruntime_run(llama):
    """The fp32 figures equal those of the whole text run once through onnxruntime without the cache."""
    (text, _) = load_quality_references(llama / QUALITY_NAME, ["text", "chat"])
    session = ort.InferenceSession(str(llama / "model.onnx"))
    ids = text.input_ids
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "position_ids": np.arange(ids.shape[1])[None]}
    for spec in session.get_inputs():
        if spec.name.startswith("past_key_values."):
            feeds[spec.name] = np.zeros((1, spec.shape[1], 0, spec.shape[3]), dtype=np.float32)
    logits = session.run(["logits"], feeds)[0][0, :-1].astype(np.float64)
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    nll = -log_probs[np.arange(ids.shape[1] - 1), ids[0, 1:]]
    assert _manifest(llama)["files"]["model.onnx"]["quality"]["text"]["nll"] == pytest.approx(nll.mean(), abs=1e-6)


def test_a_tokenizer_without_chat_template_skips_the_chat(generation_models):
    manifest = _manifest(generation_models.get("gpt2").onnx)
    assert list(manifest["quality"]["texts"]) == ["text"]
    assert manifest["quality"]["skipped"] == {"chat": "the tokenizer has no chat template"}
    assert manifest["files"]["model.onnx"]["quality"]["top1_agreement"] == 1.0
    assert "chat" not in manifest["files"]["model_quantized.onnx"]["quality"]


def test_encoder_decoders_are_measured_on_the_decoder(generation_models):
    folder = generation_models.get("t5").onnx
    manifest = _manifest(folder)
    assert manifest["quality"]["inputs"].startswith("encoder: a 128-token English narrative; decoder teacher-forced")
    (text,) = load_quality_references(folder / QUALITY_NAME, ["text"])
    assert text.source_ids is not None and text.input_ids[0, 0] == 0  # T5's decoder starts with its pad token
    assert "quality" not in manifest["files"]["encoder_model.onnx"]
    fp32 = manifest["files"]["decoder_model_merged.onnx"]["quality"]
    assert fp32["top1_agreement"] == 1.0 and abs(fp32["nll_increase"]) <= 1e-5
    assert manifest["files"]["decoder_model_merged_quantized.onnx"]["quality"]["top1_agreement"] < 1.0


def test_summary_prints_every_variant_and_warns_below_target(llama):
    manifest = _manifest(llama)
    notes = [
        w for name, entry in manifest["files"].items()
        if (w := gq.quality_warning(entry["dtype"], name, entry["quality"]))
    ]
    text = format_summary(str(llama), manifest, notes, 1.0)
    for entry in manifest["files"].values():
        assert f"top-1 agreement {entry['quality']['top1_agreement']:.1%}" in text
    assert f"quality teacher-forced on: {manifest['quality']['inputs']}" in text
    q4 = manifest["files"]["model_q4.onnx"]["quality"]
    assert f"WARNING: model_q4.onnx: teacher-forced on {q4['tokens']} tokens, top-1 agreement" in text
    assert "WARNING: model.onnx" not in text


def test_warning_thresholds():
    good = {"tokens": 300, "top1_agreement": 0.9, "nll_increase": 0.01}
    assert gq.quality_warning("q4", "model_q4.onnx", good) is None
    assert "84.0% (target >= 85%)" in gq.quality_warning("q4", "model_q4.onnx", {**good, "top1_agreement": 0.84})
    assert "+3.00% (target <= +2%)" in gq.quality_warning("q4", "model_q4.onnx", {**good, "nll_increase": 0.03})
    assert "96.0% (target >= 97%)" in gq.quality_warning("int8", "model_quantized.onnx", {**good, "top1_agreement": 0.96})
    assert gq.quality_warning("fp16", "model_fp16.onnx", {**good, "top1_agreement": 0.97}) is None
    assert gq.quality_warning("fp32", "model.onnx", {**good, "top1_agreement": 0.5}) is None  # fp32 is checked, not warned


def test_fp32_that_does_not_follow_torch_fails():
    fine = {"top1_agreement": 0.995, "nll": 2.0, "nll_torch": 2.0, "nll_increase": 5e-4}
    gq.check_fp32(fine)
    with pytest.raises(ValidationError, match=r"top-1 agreement 0\.9000 \(at least 0\.99 expected\).*nothing was written"):
        gq.check_fp32({**fine, "top1_agreement": 0.9})
    with pytest.raises(ValidationError, match=r"relative change 2\.00e-03"):
        gq.check_fp32({**fine, "nll_increase": -2e-3})
