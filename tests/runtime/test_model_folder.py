"""Model folders onnxpipe reads: its own exports, plain optimum exports, transformers.js-style repos."""

from __future__ import annotations

import shutil

import pytest
from support.checkpoints import VARIED_TEXTS
from support.parity import assert_same

from onnxpipe import pipeline
from onnxpipe.model_folder import ModelFolder, normalize_dtype


@pytest.fixture(scope="module")
def exported(models):
    return models.get("bert", "text-classification").onnx


def test_manifest_task_and_default_dtype(exported):
    folder = ModelFolder.open(str(exported))
    assert folder.task == "text-classification"
    assert folder.variants() == {"fp32": "model.onnx", "int8": "model_quantized.onnx"}
    assert folder.default_dtype("cpu") == "fp32"  # the first dtype the export was asked for


def test_task_inferred_from_manifest(exported):
    assert pipeline(model=str(exported)).task == "text-classification"


def test_transformers_js_layout(exported, tmp_path):
    """onnx/model.onnx + onnx/model_quantized.onnx and no manifest: task from config.json, int8 by default on CPU."""
    folder = tmp_path / "js"
    shutil.copytree(exported, folder)
    (folder / "onnxpipe.json").unlink()
    (folder / "onnx").mkdir()
    for name in ("model.onnx", "model_quantized.onnx"):
        (folder / name).rename(folder / "onnx" / name)
    opened = ModelFolder.open(folder)
    assert opened.manifest is None and opened.task == "text-classification"
    assert opened.variants() == {"fp32": "onnx/model.onnx", "int8": "onnx/model_quantized.onnx"}
    assert opened.default_dtype("cpu") == "int8" and opened.default_dtype("cuda") == "fp32"
    ours = pipeline(model=str(folder), dtype="q8")
    assert ours.model_path.name == "model_quantized.onnx" and ours.dtype == "int8"
    assert pipeline(model=str(folder)).dtype == "int8"  # the CPU default without a manifest
    reference = pipeline("text-classification", model=str(exported), dtype="int8")
    assert_same(ours(list(VARIED_TEXTS)), reference(list(VARIED_TEXTS)), atol=0)


def test_plain_optimum_export_layout(models, tmp_path):
    """model.onnx at the top, no manifest: a BertModel config means feature-extraction."""
    folder = tmp_path / "optimum"
    shutil.copytree(models.get("bert", "feature-extraction").onnx, folder)
    (folder / "onnxpipe.json").unlink()
    (folder / "model_quantized.onnx").unlink()
    ours = pipeline(model=str(folder))
    assert ours.task == "feature-extraction" and ours.model_path.name == "model.onnx" and ours.dtype == "fp32"


@pytest.mark.parametrize("spelling, name", [("float32", "fp32"), ("Q8", "int8"), ("float16", "fp16"), ("int4", "q4")])
def test_dtype_spellings(spelling, name):
    assert normalize_dtype(spelling) == name
