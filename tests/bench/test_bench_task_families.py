"""The benchmark harness on issue 18's task families: the real-size configurations of task_models.py (their published
fields, checked without building weights), document-question-answering inputs (a question and word boxes of an exact
token count), its harness rows with the LayoutLMv3 torch engine, and image-to-image's smaller pictures.
No real-size model is built and no timed assertion is made."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.document_checkpoints import build_document_checkpoint

from onnxpipe import pipeline
from onnxpipe.model_folder import ModelFolder
from onnxpipe_bench.bench import BenchOptions, engine_specs, resolve_model, sizes_and_notes
from onnxpipe_bench.images import decode_images
from onnxpipe_bench.task_inputs import build_inputs, word_boxes
from onnxpipe_bench.task_models import TASK_BUILDERS, TASK_CONFIGS
from onnxpipe_bench.tasks import QUESTION, task_spec

DQA = "document-question-answering"
# parameters of each configuration (torch on the meta device: no memory), as the published checkpoints have them
PARAMETERS_M = {"vit-base-in21k": 86.4, "glpn-kitti": 61.2, "swin2sr-classical-x2": 12.1, "owlvit-base-patch32": 153.2,
                "layoutlmv3-base": 125.9, "vit-gpt2": 239.2, "mms-tts-eng": 36.3}


@pytest.fixture(scope="module")
def layoutlmv3(models):
    return models._once("document-layoutlmv3", DQA, lambda folder: build_document_checkpoint("layoutlmv3", folder))


def test_every_task_family_has_a_builder_a_config_and_a_spec():
    assert set(TASK_BUILDERS) == set(TASK_CONFIGS) == set(PARAMETERS_M)
    tasks = {task for task, _ in TASK_BUILDERS.values()}
    assert tasks == {"image-feature-extraction", "depth-estimation", "image-to-image", "zero-shot-object-detection", DQA,
                     "image-to-text", "text-to-audio"}
    for task in tasks:
        assert task_spec(task).task == task


@pytest.mark.parametrize("arch", sorted(PARAMETERS_M))
def test_configs_have_the_published_size(arch):
    import torch
    import transformers

    config = TASK_CONFIGS[arch]()
    head = {"vit-base-in21k": "ViTModel", "glpn-kitti": "GLPNForDepthEstimation",
            "swin2sr-classical-x2": "Swin2SRForImageSuperResolution", "owlvit-base-patch32": "OwlViTForObjectDetection",
            "layoutlmv3-base": "LayoutLMv3ForQuestionAnswering", "vit-gpt2": "VisionEncoderDecoderModel",
            "mms-tts-eng": "VitsModel"}[arch]
    with torch.device("meta"):
        model = getattr(transformers, head)(config=config)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(PARAMETERS_M[arch], abs=0.05)


def test_published_fields():
    glpn, layout, mms, owl, swin2sr, vit, vit_gpt2 = (TASK_CONFIGS[a]() for a in sorted(TASK_CONFIGS))
    assert (vit.hidden_size, vit.num_hidden_layers, vit.patch_size, vit.image_size) == (768, 12, 16, 224)
    assert (glpn.depths, glpn.hidden_sizes, glpn.max_depth) == ([3, 8, 27, 3], [64, 128, 320, 512], 80)
    assert (swin2sr.embed_dim, swin2sr.depths, swin2sr.window_size, swin2sr.upscale) == (180, [6] * 6, 8, 2)
    assert (owl.vision_config.image_size, owl.vision_config.patch_size, owl.text_config.max_position_embeddings) == (768, 32, 16)
    assert (layout.vocab_size, layout.input_size, layout.coordinate_size, layout.max_position_embeddings) == (50265, 224, 128, 514)
    assert (vit_gpt2.decoder.n_layer, vit_gpt2.decoder.vocab_size, vit_gpt2.decoder_start_token_id) == (12, 50257, 50256)
    assert vit_gpt2.decoder.add_cross_attention and vit_gpt2.encoder.image_size == 224
    assert (mms.vocab_size, mms.hidden_size, mms.upsample_rates, mms.sampling_rate) == (38, 192, [8, 8, 2, 2], 16000)
    assert mms.use_stochastic_duration_prediction and mms.noise_scale_duration == 0.0  # lengths equal on every engine


def test_word_boxes_lay_words_out_on_a_page():
    words = [f"w{i}" for i in range(40)]
    boxes = word_boxes(words)
    assert [w for w, _ in boxes] == words
    for _, (x0, y0, x1, y1) in boxes:
        assert 0 <= x0 < x1 <= 1000 and 0 <= y0 < y1 <= 1000
    assert boxes[0][1][1] == boxes[11][1][1] < boxes[12][1][1]  # 12 words a line


def test_document_inputs_have_the_asked_token_count(layoutlmv3):
    folder = ModelFolder.open(str(layoutlmv3.onnx))
    spec = task_spec(DQA, folder.config)
    documents, tokens = build_inputs(folder, spec, 48, 3)
    assert tokens == 48
    assert [sorted(d) for d in documents] == [["image", "question", "word_boxes"]] * 3
    assert all(d["question"] == QUESTION for d in documents)
    assert len({tuple(w for w, _ in d["word_boxes"]) for d in documents}) == 3  # different texts
    assert decode_images(documents[:1])[0]["image"].size == (640, 480)


def test_torch_engine_answers_like_onnxpipe_on_the_benchmark_documents(layoutlmv3):
    """The harness's transformers engine runs LayoutLMv3 with its page (4.57's pipeline alone fails on it) and gives
    onnxpipe's fp32 answers on the benchmark's documents, so the two time the same work."""
    from onnxpipe_bench.engine_spec import EngineSpec
    from onnxpipe_bench.engine_torch import load_transformers

    folder = ModelFolder.open(str(layoutlmv3.onnx))
    documents = decode_images(build_inputs(folder, task_spec(DQA, folder.config), 48, 2)[0])
    torch_pipe, timer = load_transformers(EngineSpec("transformers", DQA, str(layoutlmv3.checkpoint)))
    theirs = torch_pipe(documents, batch_size=2)
    assert timer.seconds > 0  # the patched forward is the one timed
    ours = pipeline(DQA, model=str(layoutlmv3.onnx))(documents, batch_size=2)
    for our_answers, their_answers in zip(ours, theirs, strict=True):
        our_answers, their_answers = [our_answers] if isinstance(our_answers, dict) else our_answers, \
            [their_answers] if isinstance(their_answers, dict) else their_answers
        assert [(a["answer"], a["start"], a["end"]) for a in our_answers] == [(a["answer"], a["start"], a["end"]) for a in their_answers]
        assert [a["score"] for a in our_answers] == pytest.approx([a["score"] for a in their_answers], abs=1e-4)


def test_document_question_answering_rows(layoutlmv3, tmp_path):
    """One short harness run: onnxpipe fp32 against torch, Optimum skipped with its reason, token counts measured."""
    argv = [sys.executable, "-m", "onnxpipe_bench", "--model", str(layoutlmv3.onnx), "--dtype", "fp32", "--runs", "2",
            "--warmup", "0", "--cold-runs", "1", "--batch-size", "2", "--seq-len", "40", "--compare", "torch,optimum",
            "--json", str(tmp_path / "r.json"), "--quiet"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["task"] == DQA
    assert [e["name"] for e in record["engines"]] == ["onnxpipe fp32", "transformers torch fp32"]
    assert record["skipped"] == [{"engine": "optimum", "reason": task_spec(DQA).optimum_note}]
    assert [(r["batch_size"], r["seq_len"], r["tokens_per_input"]) for r in record["results"]] == [(2, 40, 40.0)] * 2
    assert all(len(r["samples_ms"]) == 2 and 0 < r["core_median_ms"] < r["median_ms"] for r in record["results"])
    assert any("word_boxes" in note for note in record["notes"])
    assert record["engines"][0]["heavy_modules_imported"] == []


def test_image_to_image_uses_its_own_picture_size(vision_models):
    options = BenchOptions(model=str(vision_models.get("swin2sr").onnx), dtypes=["fp32"], compare=["torch", "optimum"])
    folder, task, files = resolve_model(options)
    spec = task_spec(task, folder.config)
    assert task == "image-to-image" and spec.picture == (128, 128)
    sizes, notes = sizes_and_notes(options, folder, task, spec)
    assert sizes == ["128x128"] and "128x128" in notes[0]
    pictures, tokens = build_inputs(folder, spec, sizes[0], 2)
    assert tokens is None and [p.size for p in decode_images(pictures)] == [(128, 128)] * 2
    specs, skipped = engine_specs(options, folder, task, files)
    assert [s.name for s in specs] == ["onnxpipe fp32", "transformers torch fp32", "optimum fp32"] and skipped == []


def test_image_to_text_rows_count_caption_tokens_on_every_engine(models, tmp_path):
    """A tiny ViT + GPT-2 captioner under the harness: greedy, NEW_TOKENS forced on onnxpipe, torch and Optimum's
    ORTModelForVision2Seq (the same encoder + merged decoder pair), decoder steps counted."""
    from support.image_to_text_checkpoints import build_image_to_text_checkpoint

    new_tokens = 4
    exported = models._once("image-to-text-vit-gpt2", "image-to-text",
                            lambda folder: build_image_to_text_checkpoint("vit-gpt2", folder))
    argv = [sys.executable, "-m", "onnxpipe_bench", "--model", str(exported.onnx), "--dtype", "fp32", "--runs", "2",
            "--warmup", "0", "--cold-runs", "1", "--batch-size", "1", "--new-tokens", str(new_tokens),
            "--compare", "torch,optimum", "--json", str(tmp_path / "r.json"), "--quiet"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["task"] == "image-to-text" and record["skipped"] == []
    names = ["onnxpipe fp32", "transformers torch fp32", "optimum fp32"]
    assert [e["name"] for e in record["engines"]] == names
    pair = "encoder_model.onnx + decoder_model_merged.onnx"
    assert [e["file"] for e in record["engines"]] == [pair, None, pair]
    for r in record["results"]:
        assert r["seq_len"] == "480x640" and r["new_tokens"] == new_tokens and r["decoder_steps"] == new_tokens
        assert r["tokens_per_s"] == pytest.approx(new_tokens * 1000 / r["median_ms"])
    assert any("image-to-text: every engine decodes greedily" in note for note in record["notes"])


def test_text_of_characters_has_the_asked_length():
    from onnxpipe_bench.task_inputs import text_of_characters

    texts = [text_of_characters(n, seed) for n in (1, 37, 100) for seed in (0, 1)]
    assert [len(t) for t in texts] == [1, 1, 37, 37, 100, 100]
    assert all(not t.endswith(" ") for t in texts) and texts[4] != texts[5]


def test_text_to_audio_rows_time_both_vits_graphs(tmp_path):
    """A tiny VITS under the harness: texts of --seq-len characters, onnxpipe fp32 against torch (Optimum skipped
    with its reason); onnxpipe's core time covers the prior and the waveform graphs."""
    from support.text_to_audio_checkpoints import build_vits

    from onnxpipe_bench.engine_onnxpipe import load_onnxpipe
    from onnxpipe_bench.engine_spec import EngineSpec
    from onnxpipe_export import export

    checkpoint, folder = build_vits(tmp_path / "vits"), tmp_path / "vits_onnx"
    export(str(checkpoint), task="text-to-audio", output=str(folder), dtype=["fp32"], quiet=True)  # fp32 only, as yet
    pipe, timer = load_onnxpipe(EngineSpec("onnxpipe", "text-to-audio", str(folder)))
    assert pipe.waveform_session.session.run.__name__ == "timed" and pipe.session.session.run.__name__ == "timed"
    pipe("the river runs past the old mill")
    assert timer.seconds > 0
    argv = [sys.executable, "-m", "onnxpipe_bench", "--model", str(folder), "--dtype", "fp32", "--runs", "2",
            "--warmup", "0", "--cold-runs", "1", "--batch-size", "1", "--seq-len", "30", "--compare", "torch,optimum",
            "--json", str(tmp_path / "r.json"), "--quiet"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["task"] == "text-to-audio"
    assert [e["name"] for e in record["engines"]] == ["onnxpipe fp32", "transformers torch fp32"]
    assert record["engines"][0]["file"] == "vits_prior.onnx + vits_waveform.onnx"
    assert record["skipped"] == [{"engine": "optimum", "reason": task_spec("text-to-audio").optimum_note}]
    assert [(r["seq_len"], r["tokens_per_input"]) for r in record["results"]] == [(30, 30.0)] * 2
    assert all(0 < r["core_median_ms"] < r["median_ms"] for r in record["results"])
    assert any("characters" in note for note in record["notes"])
