"""Issue 15, defects 6 and 8: what `pipeline()` refuses at load with a clear error: a task whose head the folder's
graph does not have, a broken manifest or tokenizer.json (CorruptModelError), too many intra-op threads."""

from __future__ import annotations

import json
import shutil

import pytest
from support import checkpoints

from onnxpipe import pipeline
from onnxpipe.errors import CorruptModelError, InvalidOptionError
from onnxpipe.session import max_threads


@pytest.fixture(scope="module")
def embed(models):
    return models.get("bert", "feature-extraction").onnx


@pytest.fixture
def copy(tmp_path, embed):
    folder = tmp_path / "model"
    shutil.copytree(embed, folder)
    return folder


@pytest.mark.parametrize("task", ["text-classification", "sentiment-analysis", "fill-mask", "token-classification",
                                  "question-answering", "zero-shot-classification"])
def test_a_task_the_folder_was_not_exported_for_is_refused(embed, task):
    with pytest.raises(InvalidOptionError, match="was exported for 'feature-extraction'") as raised:
        pipeline(task, model=str(embed), dtype="fp32")
    assert "last_hidden_state" in str(raised.value) and "--task" in str(raised.value)


def test_other_folders_refuse_feature_extraction(models):
    with pytest.raises(InvalidOptionError, match="was exported for 'text-classification'"):
        pipeline("feature-extraction", model=str(models.get("bert", "text-classification").onnx), dtype="fp32")


def test_tasks_that_share_a_graph_stay_allowed(models):
    nli = models.get("bert", "zero-shot-classification", labels=checkpoints.NLI_LABELS).onnx
    classify = pipeline("text-classification", model=str(nli), dtype="fp32")
    assert {row["label"] for row in classify("a text", top_k=None)} == set(checkpoints.NLI_LABELS)
    cls = models.get("bert", "text-classification").onnx
    assert pipeline("sentiment-analysis", model=str(cls), dtype="fp32")("good")[0]["label"]


def manifest_less(source, folder):
    """A copy of an exported folder as a plain optimum export would be: no onnxpipe.json, only model.onnx."""
    shutil.copytree(source, folder)
    (folder / "onnxpipe.json").unlink()
    for extra in folder.glob("model_*.onnx"):
        extra.unlink()
    return folder


@pytest.mark.parametrize("task", ["text-classification", "fill-mask", "token-classification", "question-answering"])
def test_a_folder_without_manifest_is_checked_by_its_graph_outputs(tmp_path, embed, task):
    folder = manifest_less(embed, tmp_path / "plain")
    with pytest.raises(InvalidOptionError, match=r"ends in a base model \(last_hidden_state\) head") as raised:
        pipeline(task, model=str(folder))
    assert "pipeline('feature-extraction'" in str(raised.value) and "--task" in str(raised.value)


def test_a_masked_lm_without_manifest_is_not_a_token_classifier(tmp_path, models):
    folder = manifest_less(models.get("bert", "fill-mask").onnx, tmp_path / "plain")
    with pytest.raises(InvalidOptionError, match="ends in a masked-lm head"):
        pipeline("token-classification", model=str(folder))
    assert pipeline("fill-mask", model=str(folder))("paris is the [MASK] of france.")[0]["token_str"]


def test_broken_manifest_is_corrupt_model_error(copy):
    (copy / "onnxpipe.json").write_text('{"format_version": 1, "task": ')
    with pytest.raises(CorruptModelError, match="onnxpipe.json is not valid JSON"):
        pipeline("feature-extraction", model=str(copy))
    (copy / "onnxpipe.json").write_text("[1, 2]")
    with pytest.raises(CorruptModelError, match="not the manifest's object"):
        pipeline("feature-extraction", model=str(copy))
    (copy / "onnxpipe.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(CorruptModelError, match="format_version 99"):
        pipeline("feature-extraction", model=str(copy))


def test_broken_tokenizer_json_is_corrupt_model_error(copy):
    manifest = json.loads((copy / "onnxpipe.json").read_text())
    manifest.get("support_files", {}).pop("tokenizer.json", None)  # not a tampering test: the file is simply broken
    (copy / "onnxpipe.json").write_text(json.dumps(manifest))
    (copy / "tokenizer.json").write_text('{"version": "1.0", "model": ')
    with pytest.raises(CorruptModelError, match="tokenizer.json cannot be read"):
        pipeline("feature-extraction", model=str(copy), dtype="fp32")


def test_too_many_intra_op_threads_is_refused_with_the_bound(embed):
    bound = max_threads()
    with pytest.raises(InvalidOptionError, match=f"more than {bound}"):
        pipeline("feature-extraction", model=str(embed), dtype="fp32", intra_op_num_threads=bound + 1)
    assert pipeline("feature-extraction", model=str(embed), dtype="fp32", intra_op_num_threads=1)("x")
