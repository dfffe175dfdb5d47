"""The export stage on tiny BERT checkpoints built offline: files, manifest, parity, errors, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("optimum.exporters.onnx")

import torch  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast  # noqa: E402

import onnxpipe_export  # noqa: E402
from onnxpipe.errors import ExportDependencyError, UnknownTaskError  # noqa: E402
from onnxpipe.manifest import read_manifest, sha256_file  # noqa: E402
from onnxpipe_export import cli, deps  # noqa: E402
from onnxpipe_export import validate as check  # noqa: E402
from onnxpipe_export.errors import (  # noqa: E402
    ExportQualityWarning,
    OutputFolderError,
    SourceNotFoundError,
    UnsupportedDtypeError,
    ValidationError,
)
from onnxpipe_export.optimize import fuse  # noqa: E402
from onnxpipe_export.source import resolve_source  # noqa: E402
from onnxpipe_export.tasks import export_task  # noqa: E402

WORDS = (
    "the a an is was be to of and in that have it for not on with he as you do at this but his by from they we "
    "say her she or will my one all would there their what so up out if about who get which go me when make can "
    "like time no just him know take people into year your good some could them see other than then now look "
    "only come its over think also back after use two how our work first well way even new want because any "
    "these give day most us movie film great bad love hate food bread man eating cat dog fox quick brown lazy"
).split()
LETTERS = "abcdefghijklmnopqrstuvwxyz"
ALL_DTYPES = ["fp32", "int8", "fp16"]


def _vocab() -> list[str]:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *LETTERS, *(f"##{c}" for c in LETTERS)]
    return list(dict.fromkeys(tokens))  # unique, in order


def _tokenizer(folder: Path) -> BertTokenizerFast:
    vocab = folder / "vocab-source.txt"
    vocab.write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab_file=str(vocab), model_max_length=64)


def _config() -> BertConfig:
    return BertConfig(
        vocab_size=len(_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        num_labels=3,
        initializer_range=0.5,  # a larger init scale, so outputs depend on the input
        id2label={0: "negative", 1: "neutral", 2: "positive"},
        label2id={"negative": 0, "neutral": 1, "positive": 2},
    )


def _checkpoint(folder: Path, model_class: type) -> Path:
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    model = model_class(_config()).eval()
    model.save_pretrained(folder)
    _tokenizer(folder.parent).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert_cls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "bert-cls", BertForSequenceClassification)


@pytest.fixture(scope="module")
def bert_fe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = _checkpoint(tmp_path_factory.mktemp("ckpt") / "bert-fe", BertModel)
    # a sentence-transformers layout: these files travel with the export, and must not turn optimum's
    # export into a sentence-transformers one (outputs token_embeddings + sentence_embedding)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"similarity_fn_name": "cosine"}))
    (folder / "1_Pooling").mkdir()
    pooling = {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return folder


@pytest.fixture(scope="module")
def cls_export(bert_cls: Path, tmp_path_factory: pytest.TempPathFactory):
    """One full export (all dtypes, alias task name) run from an empty working directory."""
    cwd = tmp_path_factory.mktemp("cwd")
    out = tmp_path_factory.mktemp("exports") / "bert-cls-onnx"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExportQualityWarning)  # int8 of random weights may flip a label
            result = onnxpipe_export.export(str(bert_cls), "sentiment-analysis", str(out), ALL_DTYPES, quiet=True)
    return result, cwd


@pytest.fixture(scope="module")
def fe_export(bert_fe: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("exports") / "bert-fe-onnx"
    return onnxpipe_export.export(bert_fe, "feature-extraction", out, "int8", quiet=True)


# --- text-classification: files and manifest ------------------------------------------------


def test_writes_every_variant_and_support_files(cls_export) -> None:
    result, _ = cls_export
    names = {"model.onnx", "model_quantized.onnx", "model_fp16.onnx"}
    assert {p.name for p in result.files} == names
    for name in names | {"onnxpipe.json", "config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"}:
        assert (result.output / name).is_file(), name
    assert result.output.is_absolute()


def test_manifest_describes_the_export(cls_export, bert_cls: Path) -> None:
    result, _ = cls_export
    manifest = read_manifest(result.output)
    assert manifest == result.manifest
    assert manifest["format_version"] == 1
    assert manifest["task"] == "text-classification"  # the alias was normalized
    assert manifest["default_dtype"] == "fp32"
    assert manifest["source"] == {
        "model": str(bert_cls.resolve()),
        "revision": None,
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
    }
    assert manifest["created_with"]["torch"] and manifest["created_with"]["optimum-onnx"] == "0.1.0"
    assert manifest["export"]["optimum_task"] == "text-classification"
    assert isinstance(manifest["export"]["opset"], int) and manifest["export"]["opset"] >= 11
    optimization = manifest["optimization"]
    assert optimization["fusion"] is True and optimization["ort_model_type"] == "bert"
    assert optimization["fused_operators"]["Attention"] == 2
    assert "8 texts" in manifest["validation"]["inputs"] and "4 text pairs" in manifest["validation"]["inputs"]


def test_manifest_checksums_and_signatures_match_the_files(cls_export) -> None:
    result, _ = cls_export
    files = result.manifest["files"]
    assert {name: entry["dtype"] for name, entry in files.items()} == {
        "model.onnx": "fp32",
        "model_quantized.onnx": "int8",
        "model_fp16.onnx": "fp16",
    }
    for name, entry in {**files, **result.manifest["support_files"]}.items():
        path = result.output / name
        assert entry["sha256"] == sha256_file(path), name
        assert entry["size"] == path.stat().st_size, name
    for entry in files.values():
        assert [i["name"] for i in entry["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
        assert entry["outputs"] == [{"name": "logits", "type": "float32", "shape": ["batch_size", 3]}]
    assert files["model.onnx"]["quantization"] is None
    int8 = files["model_quantized.onnx"]["quantization"]
    assert {k: int8[k] for k in ("method", "weight_type", "per_channel")} == {
        "method": "dynamic",
        "weight_type": "QInt8",
        "per_channel": True,
    }
    # SmoothQuant ran on the fused graph: 2 Attention ops and the MatMuls of 2 layers (FFN in/out, attention output)
    assert int8["smoothquant"]["alpha"] == 0.7 and int8["smoothquant"]["matmuls"] >= 2
    assert int8["smoothquant"]["calibration_texts"] > 10
    assert files["model_fp16.onnx"]["quantization"] == {"method": "fp16", "keep_io_types": True}


def test_validation_figures(cls_export) -> None:
    result, _ = cls_export
    files = result.manifest["files"]
    fp32 = files["model.onnx"]["validation"]
    assert 0 <= fp32["max_abs_diff"] <= fp32["tolerance"] and fp32["tolerance"] >= 1e-4
    assert fp32["top1_agreement"] == 1.0
    for name in ("model_quantized.onnx", "model_fp16.onnx"):
        figures = files[name]["validation"]
        assert figures["max_abs_diff"] > 0 and 0 <= figures["top1_agreement"] <= 1.0
    assert result.output.joinpath("model_quantized.onnx").stat().st_size < 0.6 * files["model.onnx"]["size"]


def test_leaves_nothing_in_the_working_directory(cls_export) -> None:
    _, cwd = cls_export
    assert list(cwd.iterdir()) == []


def test_fp32_file_matches_torch_with_either_padding_side(cls_export, bert_cls: Path) -> None:
    """Checked without the export's own validator; left padding proves the fused attention takes a raw mask."""
    import onnxruntime as ort

    result, _ = cls_export
    model = BertForSequenceClassification.from_pretrained(bert_cls).eval()
    session = ort.InferenceSession(str(result.output / "model.onnx"), providers=["CPUExecutionProvider"])
    for side in ("right", "left"):
        tokenizer = BertTokenizerFast.from_pretrained(result.output, padding_side=side)
        batch = tokenizer(list(check.SAMPLE_TEXTS), padding=True, truncation=True, return_tensors="np")
        with torch.no_grad():
            expected = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
        (logits,) = session.run(None, dict(batch))
        np.testing.assert_allclose(logits, expected, atol=1e-4 * max(1.0, np.abs(expected).max()))
    assert len(set(expected.argmax(-1).tolist())) > 1, "degenerate tiny model: every input gets one label"


# --- feature-extraction ------------------------------------------------------------------------


def test_feature_extraction_export(fe_export) -> None:
    manifest = fe_export.manifest
    assert manifest["task"] == "feature-extraction"
    assert manifest["default_dtype"] == "int8"  # the first listed dtype; fp32 is written anyway
    assert set(manifest["files"]) == {"model.onnx", "model_quantized.onnx"}
    assert not (fe_export.output / "model_fp16.onnx").exists()
    for entry in manifest["files"].values():
        assert [o["name"] for o in entry["outputs"]] == ["last_hidden_state"]
    fp32 = manifest["files"]["model.onnx"]["validation"]
    assert fp32["max_abs_diff"] <= fp32["tolerance"] and fp32["min_cosine"] > 0.9999
    assert 0.5 < manifest["files"]["model_quantized.onnx"]["validation"]["min_cosine"] <= 1.0
    assert "text pairs" not in manifest["validation"]["inputs"]
    for name in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
        assert (fe_export.output / name).is_file() and name in manifest["support_files"]
    for name in ("1_Pooling/config.json",):
        assert (fe_export.output / name).is_file() and name in manifest["support_files"]


# --- errors ------------------------------------------------------------------------------------


def test_task_aliases_and_unknown_tasks(tmp_path: Path, bert_cls: Path) -> None:
    assert export_task("sentiment-analysis").task == "text-classification"
    assert export_task("Feature-Extraction").optimum_task == "feature-extraction"
    with pytest.raises(UnknownTaskError, match="text-classification"):
        onnxpipe_export.export(bert_cls, "no-such-task", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-checkpoint"
    folder.mkdir()
    with pytest.raises(SourceNotFoundError, match="not-a-checkpoint.*config.json") as info:
        onnxpipe_export.export(folder, "text-classification", tmp_path / "out", quiet=True)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        onnxpipe_export.export(tmp_path / "missing", "text-classification", tmp_path / "out", quiet=True)


def test_q4_and_unknown_dtypes_are_refused(tmp_path: Path, bert_cls: Path) -> None:
    with pytest.raises(UnsupportedDtypeError, match="q4.*not implemented for encoder tasks yet"):
        onnxpipe_export.export(bert_cls, "text-classification", tmp_path / "out", ["int8", "q4"])
    with pytest.raises(UnsupportedDtypeError, match="fp32, int8, fp16"):
        onnxpipe_export.export(bert_cls, "text-classification", tmp_path / "out", "int4")
    assert not (tmp_path / "out").exists()


def test_missing_export_extra_names_the_install_command(tmp_path: Path, bert_cls, monkeypatch) -> None:
    monkeypatch.setattr(deps, "_has_module", lambda name: name != "torch")
    with pytest.raises(ExportDependencyError, match=r"torch.*pip install 'onnxpipe\[export\]'"):
        onnxpipe_export.export(bert_cls, "text-classification", tmp_path / "out")


def test_foreign_output_folder_is_refused(tmp_path: Path, bert_cls: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match="not empty"):
        onnxpipe_export.export(bert_cls, "text-classification", out, quiet=True)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_fp32_outside_tolerance_fails_and_writes_nothing(tmp_path: Path, bert_cls: Path, monkeypatch) -> None:
    import onnxpipe.validation

    monkeypatch.setattr(onnxpipe.validation, "FP32_RELATIVE_TOLERANCE", 1e-12)
    with pytest.raises(ValidationError, match=r"max_abs_diff .* exceeds the tolerance"):
        onnxpipe_export.export(bert_cls, "text-classification", tmp_path / "out", "int8", quiet=True)
    assert not (tmp_path / "out").exists()


def test_fused_graph_outside_tolerance_falls_back_to_unfused(tmp_path: Path, bert_cls: Path, monkeypatch) -> None:
    real = check.onnx_outputs

    def spoil_fused(path, recipe, samples):
        outputs = real(path, recipe, samples)
        return [o + 1.0 for o in outputs] if path.name == "fused.onnx" else outputs

    monkeypatch.setattr(check, "onnx_outputs", spoil_fused)
    with pytest.warns(ExportQualityWarning, match="fusion dropped"):
        result = onnxpipe_export.export(bert_cls, "text-classification", tmp_path / "out", quiet=True)
    optimization = result.manifest["optimization"]
    assert optimization["fusion"] is False and "kept the unfused graph" in optimization["reason"]
    assert optimization["fused_operators"]["Attention"] == 2  # what fusion found, for the record
    fp32 = result.manifest["files"]["model.onnx"]["validation"]
    assert fp32["max_abs_diff"] <= fp32["tolerance"]


def test_unknown_model_type_skips_fusion(tmp_path: Path) -> None:
    fusion = fuse(tmp_path / "never-read.onnx", tmp_path / "fused.onnx", "made-up-type")
    assert not fusion.fused and "made-up-type" in fusion.reason
    assert fusion.manifest_entry() == {"fusion": False, "reason": fusion.reason}


def test_reexport_replaces_the_previous_export(tmp_path: Path, bert_fe: Path, capsys) -> None:
    out = tmp_path / "out"
    onnxpipe_export.export(bert_fe, "feature-extraction", out, "fp16", quiet=True, validate=False)
    assert (out / "model_fp16.onnx").is_file()
    capsys.readouterr()
    result = onnxpipe_export.export(bert_fe, "feature-extraction", out, "int8", optimize=False)
    assert sorted(p.name for p in out.glob("*.onnx")) == ["model.onnx", "model_quantized.onnx"]
    reason = "turned off by optimize=False (--no-optimize)"
    assert result.manifest["optimization"] == {"fusion": False, "reason": reason}
    summary = capsys.readouterr().out
    assert "model_quantized.onnx" in summary and "int8 / fp32 size" in summary and "cosine min" in summary


def test_hub_ids_resolve_from_the_cache(tmp_path: Path, bert_cls: Path, monkeypatch) -> None:
    import shutil

    import huggingface_hub.constants as hub

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--org--tiny"
    shutil.copytree(bert_cls, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    source = resolve_source("org/tiny")
    assert (source.model, source.revision, source.config["model_type"]) == ("org/tiny", commit, "bert")
    with pytest.raises(SourceNotFoundError, match="'org/absent'"):
        resolve_source("org/absent")


# --- command line ------------------------------------------------------------------------------


def test_cli_exit_codes(tmp_path: Path, bert_cls: Path, capsys) -> None:
    assert cli.main([str(bert_cls), "--output", str(tmp_path / "o")]) == 2  # --task missing
    assert cli.main([str(bert_cls), "--task", "nope", "--output", str(tmp_path / "o")]) == 2
    capsys.readouterr()
    assert cli.main([str(bert_cls), "--task", "text-classification", "--dtype", "q4", "-o", str(tmp_path / "o")]) == 2
    assert "not implemented" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main([str(empty), "--task", "text-classification", "--output", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.json" in err and "Traceback" not in err


def test_import_does_not_load_torch() -> None:
    code = "import sys, onnxpipe_export; print([m for m in ('torch', 'transformers', 'optimum') if m in sys.modules])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_python_m_onnxpipe_export(tmp_path: Path, bert_cls: Path) -> None:
    out = tmp_path / "cli-out"
    command = [sys.executable, "-m", "onnxpipe_export", str(bert_cls), "--task", "text-classification"]
    command += ["--dtype", "int8", "--dtype", "fp32", "--output", str(out), "--quiet"]
    run = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    manifest = read_manifest(out)
    assert manifest["default_dtype"] == "int8"
    assert (out / "model.onnx").is_file() and (out / "model_quantized.onnx").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli-out"]


def test_output_inside_the_checkpoint_is_refused_on_every_export_path(models, generation_models):
    """Installing the export would replace the folder it sits in: single-graph and generation exports refuse it."""
    from onnxpipe_export.errors import OutputFolderError

    for checkpoint, task in ((models.get("bert", "text-classification").checkpoint, "text-classification"),
                             (generation_models.checkpoint("gpt2"), "text-generation")):
        target = checkpoint / "onnx-out"
        with pytest.raises(OutputFolderError, match="inside the checkpoint folder"):
            onnxpipe_export.export(str(checkpoint), task=task, output=str(target), quiet=True)
        assert not target.exists() and (checkpoint / "config.json").is_file()
