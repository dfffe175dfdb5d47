"""The benchmark harness on the four tasks issue #7 added to it: image-segmentation, zero-shot-image-classification,
visual-question-answering and translation. One short harness run per task on the session's tiny models, checked for
a result row per engine, the task's input kind and the skip notes where Optimum has no ORTModel. No timed assertions."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from onnxpipe_bench.bench import BenchOptions, engine_specs, resolve_model
from onnxpipe_bench.images import decode_images, make_images
from onnxpipe_bench.tasks import IMAGE_LABELS, VQA_QUESTION, pipeline_task, task_spec

ALL = ["onnxpipe fp32", "transformers torch fp32", "optimum fp32"]
WITHOUT_OPTIMUM = ALL[:2]
NEW_TOKENS = 4  # translation: a handful of forced tokens is enough to check counting
MASK_PIXELS = 10  # segmentation masks: differing pixels allowed per 480x640 mask (see the Optimum parity test)


def _run(folder, tmp_path, *extra: str):
    """One harness run (fp32, 2 timed runs, 1 cold run, no warm-up) against torch and Optimum; the JSON record and
    the Markdown report."""
    argv = [
        sys.executable, "-m", "onnxpipe_bench", "--model", str(folder), "--dtype", "fp32", "--runs", "2",
        "--warmup", "0", "--cold-runs", "1", "--compare", "torch,optimum",
        "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md"), "--quiet", *extra,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / "r.json").read_text()), (tmp_path / "r.md").read_text()


def _check_picture_rows(record, text, task, engines, batches=(2,)):
    """Every engine measured on every batch of 480x640 pictures, with figures from its own samples."""
    assert record["task"] == task
    assert [e["name"] for e in record["engines"]] == engines, record["skipped"]
    assert [(r["batch_size"], r["seq_len"], r["engine"]) for r in record["results"]] == [
        (b, "480x640", e) for b in batches for e in engines]
    for r in record["results"]:
        assert r["tokens_per_input"] is None and r["runs"] == 2 and len(r["samples_ms"]) == 2
        assert r["p95_ms"] >= r["median_ms"] > 0 and 0 < r["core_median_ms"] < r["median_ms"]
        assert "tokens_per_s" not in r
    assert record["engines"][0]["heavy_modules_imported"] == []  # onnxpipe ran without torch
    assert "| batch x picture (h x w) |" in text


def test_semantic_segmentation_on_every_engine(vision_models, tmp_path):
    record, text = _run(vision_models.get("segformer").onnx, tmp_path, "--batch-size", "2")
    _check_picture_rows(record, text, "image-segmentation", ALL)
    assert record["skipped"] == []
    assert [e["file"] for e in record["engines"]] == ["model.onnx", None, "model.onnx"]


def test_detr_panoptic_segmentation_skips_optimum_with_its_reason(vision_models):
    folder = vision_models.get("detr-panoptic").onnx
    options = BenchOptions(model=str(folder), dtypes=["fp32"], compare=["torch", "optimum"])
    model, task, files = resolve_model(options)
    assert task == "image-segmentation" and task_spec(task, model.config).optimum_class is None
    specs, skipped = engine_specs(options, model, task, files)
    assert [s.name for s in specs] == WITHOUT_OPTIMUM
    assert skipped == [{"engine": "optimum", "reason": task_spec(task, model.config).optimum_note}]
    assert "DETR panoptic" in skipped[0]["reason"]
    # a semantic model keeps Optimum's semantic-segmentation class
    assert task_spec(task, {"model_type": "segformer"}).optimum_class == "ORTModelForSemanticSegmentation"


def test_zero_shot_image_classification_on_every_engine(vision_models, tmp_path):
    record, text = _run(vision_models.get("clip").onnx, tmp_path, "--batch-size", "2")
    _check_picture_rows(record, text, "zero-shot-image-classification", ALL)
    assert record["skipped"] == []
    assert f"every engine's call options: {{'candidate_labels': {list(IMAGE_LABELS)!r}}}" in record["notes"]


def test_visual_question_answering_skips_optimum_with_a_note(vision_models, tmp_path):
    record, text = _run(vision_models.get("vilt").onnx, tmp_path, "--batch-size", "2")
    _check_picture_rows(record, text, "visual-question-answering", WITHOUT_OPTIMUM)
    assert record["skipped"] == [{"engine": "optimum", "reason": task_spec("visual-question-answering").optimum_note}]
    assert f"every picture comes with the question {VQA_QUESTION!r}" in record["notes"]


def test_question_inputs_keep_their_question_when_decoded():
    pictures = make_images(2, 24, 32, seed=3)
    decoded = decode_images([{"image": p, "question": VQA_QUESTION} for p in pictures])
    assert [sorted(d) for d in decoded] == [["image", "question"]] * 2
    assert [d["image"].size for d in decoded] == [(32, 24)] * 2 and decoded[0]["question"] == VQA_QUESTION
    assert decoded[0]["image"].tobytes() == decode_images(pictures)[0].tobytes()


def test_translation_rows_on_the_marian_pair(generation_models, tmp_path):
    """Marian under the bare task name on every engine, forced to NEW_TOKENS tokens per sequence (beam search as
    each pipeline does by default), on onnxpipe's encoder + merged decoder pair and Optimum's seq2seq model."""
    record, text = _run(generation_models.get("marian").onnx, tmp_path, "--batch-size", "1", "--new-tokens",
                        str(NEW_TOKENS))
    assert record["task"] == "translation"
    assert [e["name"] for e in record["engines"]] == ALL, record["skipped"]
    assert [r["engine"] for r in record["results"]] == ALL
    pair = "encoder_model.onnx + decoder_model_merged.onnx"
    assert [e["file"] for e in record["engines"]] == [pair, None, pair]
    for r in record["results"]:
        assert r["seq_len"] == 32 and r["tokens_per_input"] == 32  # the default prompt: exactly 32 tokens
        assert r["new_tokens"] == NEW_TOKENS and r["decoder_steps"] == NEW_TOKENS
        assert r["tokens_per_s"] == pytest.approx(NEW_TOKENS * 1000 / r["median_ms"])
    assert "every engine's pipeline is built as pipeline('translation', ...)" in record["notes"]
    assert f"min_new_tokens={NEW_TOKENS}" in text and "| batch x prompt tokens |" in text
    # a language pair asked for on the command line reaches every engine's pipeline() unchanged
    options = BenchOptions(model=str(generation_models.get("marian").onnx), task="translation_en_to_de", dtypes=["fp32"])
    model, task, files = resolve_model(options)
    specs, skipped = engine_specs(options, model, task, files)
    assert task == "translation" and skipped == [] and {s.task for s in specs} == {"translation_en_to_de"}
    assert [s.name for s in specs] == ALL


@pytest.mark.parametrize("asked, expected", [
    (None, "translation"), ("translation", "translation"), ("translation_en_to_de", "translation_en_to_de"),
    ("Translation_EN_to_FR", "translation_en_to_fr")])
def test_translation_pair_names_share_one_spec(asked, expected):
    assert pipeline_task("translation", asked) == expected
    assert task_spec(expected) is task_spec("translation")  # one spec for every language pair
    assert pipeline_task("summarization", "summarization") == "summarization"


def _answers(arch: str, rows: list) -> list:
    """A pipeline's output in comparable form: labels with scores, segment masks as arrays, translations."""
    if arch == "marian":
        return [row["translation_text"] for row in rows]
    if arch == "segformer":
        return [[(d["label"], d["score"], np.asarray(d["mask"])) for d in row] for row in rows]
    return [[(d["label"], d["score"]) for d in row] for row in rows]


@pytest.mark.parametrize("arch", ["segformer", "clip", "marian"])
def test_optimum_engine_answers_like_transformers(vision_models, generation_models, arch):
    """The Optimum engine the harness builds (ORTModelFor... on the onnxpipe folder's fp32 files, in a transformers
    pipeline) gives transformers' answers on the benchmark's inputs, so its timings compare the same work.
    fp32: identical labels and tokens, scores within 1e-4; masks equal but for MASK_PIXELS pixels per mask (argmax
    ties at float rounding: torch alone flips 1 of the 307,200 pixels between batch 1 and batch 2 on these inputs)."""
    from onnxpipe_bench.engine_optimum import load_optimum
    from onnxpipe_bench.engine_spec import EngineSpec

    if arch == "marian":
        exported, reference = generation_models.get(arch), generation_models.reference(arch)
        inputs, options = ["the council decided to build a new bridge last year", "it rained"], {"max_new_tokens": 6}
        file = "encoder_model.onnx + decoder_model_merged.onnx"
    else:
        exported, reference = vision_models.get(arch), vision_models.reference(arch)
        inputs, file = decode_images(make_images(2, 480, 640)), "model.onnx"
        options = {"candidate_labels": list(IMAGE_LABELS)} if arch == "clip" else {}
    optimum, _ = load_optimum(EngineSpec("optimum", exported.task, str(exported.onnx), file=file))
    ours = _answers(arch, optimum(inputs, batch_size=2, **options))
    theirs = _answers(arch, reference(inputs, batch_size=2, **options))
    if arch == "marian":
        assert ours == theirs and all(ours)
        return
    for our_row, their_row in zip(ours, theirs, strict=True):
        assert [x[0] for x in our_row] == [x[0] for x in their_row] and len(our_row) >= 2
        if arch == "clip":
            assert [x[1] for x in our_row] == pytest.approx([x[1] for x in their_row], abs=1e-4)
        else:
            for (_, score, mask), (_, their_score, their_mask) in zip(our_row, their_row):
                assert score is None and their_score is None and mask.shape == their_mask.shape == (480, 640)
                assert (mask != their_mask).sum() <= MASK_PIXELS
