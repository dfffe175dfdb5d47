"""Bad input gets a clear error that names the bad value and the fix."""

from __future__ import annotations

import json
import shutil

import onnxruntime as ort
import pytest

from onnxpipe import pipeline
from onnxpipe.errors import (
    CorruptModelError,
    DeviceNotAvailableError,
    IntegrityError,
    InvalidInputError,
    InvalidOptionError,
    MissingModelFileError,
    ModelNotFoundError,
    UnknownTaskError,
)


@pytest.fixture(scope="module")
def classifier_dir(models):
    return models.get("bert", "text-classification").onnx


@pytest.fixture(scope="module")
def classifier(classifier_dir):
    return pipeline("text-classification", model=str(classifier_dir), dtype="fp32")


def _copy(folder, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def test_unknown_task_lists_known_tasks(classifier_dir):
    with pytest.raises(UnknownTaskError, match="Unknown task 'text-clasification'.*text-classification.*sentiment-analysis"):
        pipeline("text-clasification", model=str(classifier_dir))


def test_missing_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist.*onnxpipe export"):
        pipeline("text-classification", model=str(tmp_path / "nope"))


def test_hub_id_offline_names_the_id():
    with pytest.raises(ModelNotFoundError, match="'someone/missing-model'.*onnxpipe export"):
        pipeline("text-classification", model="someone/missing-model")


def test_missing_dtype_lists_present_ones(classifier_dir):
    with pytest.raises(MissingModelFileError, match="no fp16 variant.*fp32 \\(model.onnx\\).*int8 \\(model_quantized.onnx\\)"):
        pipeline("text-classification", model=str(classifier_dir), dtype="fp16")


def test_unknown_dtype(classifier_dir):
    with pytest.raises(MissingModelFileError, match="Unknown dtype 'int3'"):
        pipeline("text-classification", model=str(classifier_dir), dtype="int3")


def test_checksum_mismatch(classifier_dir, tmp_path):
    folder = _copy(classifier_dir, tmp_path)
    data = bytearray((folder / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.onnx does not match onnxpipe.json.*sha256"):
        pipeline("text-classification", model=str(folder), dtype="fp32")


def test_corrupted_onnx_without_manifest(classifier_dir, tmp_path):
    folder = _copy(classifier_dir, tmp_path)
    (folder / "onnxpipe.json").unlink()
    (folder / "model.onnx").write_bytes(b"not an onnx model at all")
    with pytest.raises(CorruptModelError, match="cannot load .*model.onnx.*re-export"):
        pipeline("text-classification", model=str(folder), dtype="fp32")


def test_missing_tokenizer(classifier_dir, tmp_path):
    folder = _copy(classifier_dir, tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(MissingModelFileError, match="no tokenizer.json"):
        pipeline("text-classification", model=str(folder))


def test_folder_without_onnx_files(classifier_dir, tmp_path):
    folder = _copy(classifier_dir, tmp_path)
    for path in folder.glob("*.onnx"):
        path.unlink()
    with pytest.raises(MissingModelFileError, match="holds no ONNX file"):
        pipeline("text-classification", model=str(folder))


@pytest.mark.parametrize("bad", [None, 42, [], ["fine", None], [["a", "b"]], {"txt": "x"}])
def test_bad_text_classification_inputs(classifier, bad):
    with pytest.raises(InvalidInputError):
        classifier(bad)


def test_bad_feature_extraction_inputs(models):
    embed = pipeline("feature-extraction", model=str(models.get("bert", "feature-extraction").onnx))
    for bad in (None, 3.5, [], [b"bytes"]):
        with pytest.raises(InvalidInputError):
            embed(bad)
    with pytest.raises(InvalidOptionError, match="normalize=True needs"):
        embed("x", normalize=True)
    with pytest.raises(InvalidOptionError, match="pooling"):
        embed("x", pooling="median")  # "max" became valid with sentence-transformers pooling


@pytest.mark.parametrize(
    "options, match",
    [({"top_k": 0}, "top_k"), ({"top_k": "2"}, "top_k"), ({"function_to_apply": "relu"}, "function_to_apply"),
     ({"num_beams": 4}, "does not take option"), ({"batch_size": 0}, "batch_size"), ({"truncation": "yes"}, "truncation")],
)
def test_bad_options(classifier, options, match):
    with pytest.raises(InvalidOptionError, match=match):
        classifier("fine", **options)


def test_too_long_without_truncation(classifier):
    from support.checkpoints import LONG_TEXT

    with pytest.raises(InvalidInputError, match="at most 64"):
        classifier(LONG_TEXT, truncation=False)


def test_cuda_without_cuda(classifier_dir):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    with pytest.raises(DeviceNotAvailableError, match="CUDAExecutionProvider.*device='cpu'"):
        pipeline("text-classification", model=str(classifier_dir), device="cuda")


def test_model_is_required():
    with pytest.raises(InvalidOptionError, match="needs model="):
        pipeline("text-classification")


def test_task_cannot_be_inferred(classifier_dir, tmp_path):
    folder = _copy(classifier_dir, tmp_path)
    (folder / "onnxpipe.json").unlink()
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["BertForSomethingElse"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnknownTaskError, match="Cannot infer the task"):
        pipeline(model=str(folder))
