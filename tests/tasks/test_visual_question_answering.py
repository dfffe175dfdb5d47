"""visual-question-answering (ViLT, exported by onnxpipe's own ViLT path) at parity with transformers.pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from support.parity import assert_same
from support.vision_checkpoints import ANSWERS, picture, sample_images

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.vision.images import load_image

QUESTIONS = ["What color is the car?", "how many cats are there", "is it snowing?", "Where?"]
# int8 (dynamic, per-channel, SmoothQuant) on this tiny random ViLT, against transformers fp32 over usable_images()
# x QUESTIONS (60 pairs): the largest score difference measured was 0.023 and the top answer was kept on 57 of 60
# pairs (the sigmoid scores of a random model lie close together, so near-ties swap)
INT8_SCORE_ATOL = 0.06
INT8_MIN_TOP1 = 0.85


def usable_images() -> list:
    """sample_images() without the 7x300 / 300x7 strips, whose short side rounds to 0 pixels in ViLT's resize,
    plus a wide and a tall picture, processed to 64x96 and 96x64 where the others give 64x64."""
    kept = [im for im in sample_images() if max(im.size) < 10 * min(im.size)]
    return kept + [Image.fromarray(picture(40, 90, 11)), Image.fromarray(picture(150, 70, 12))]


@pytest.fixture(scope="module")
def pair(vision_models):
    return vision_models.pair("vilt")


def test_answers_depend_on_the_image_and_the_question(pair):
    ours, _ = pair
    images = usable_images()
    top = {(i, q): ours(image=im, question=q, top_k=1)[0]["answer"] for i, im in enumerate(images) for q in QUESTIONS}
    by_image = {top[i, QUESTIONS[0]] for i in range(len(usable_images()))}
    varies_by_question = [len({top[i, q] for q in QUESTIONS}) >= 2 for i in range(len(usable_images()))]
    assert len(by_image) >= 3, by_image
    assert sum(varies_by_question) >= len(varies_by_question) // 2, varies_by_question  # measured: most images


def test_parity_on_every_sample_image_and_question(pair):
    """Odd sizes, greyscale, LA, RGBA, palette, CMYK and 16-bit images, four questions each."""
    ours, theirs = pair
    for image in usable_images():
        for question in QUESTIONS:
            assert_same(ours(image=image, question=question), theirs(image=image, question=question))


def test_call_forms_match_transformers(pair):
    ours, theirs = pair
    a, b = usable_images()[:2]
    q, r = QUESTIONS[:2]
    assert_same(ours(a, q), theirs(a, q))
    assert_same(ours({"image": a, "question": q}), theirs({"image": a, "question": q}))
    items = [{"image": a, "question": q}, {"image": b, "question": r}]
    assert_same(ours(items), theirs(items))
    assert_same(ours(image=[a, b], question=q), theirs(image=[a, b], question=q))
    assert_same(ours(image=a, question=[q, r]), theirs(image=a, question=[q, r]))
    both = ours(image=[a, b], question=[q, r])  # every question of every image, questions outer
    assert len(both) == 4
    assert_same(both, theirs(image=[a, b], question=[q, r]))


@pytest.mark.parametrize(
    "options",
    [{"top_k": 1}, {"top_k": 3}, {"top_k": 50}, {"top_k": None}, {"padding": "max_length"}, {"padding": True}],
)
def test_options_match(pair, options):
    ours, theirs = pair
    image = usable_images()[3]
    result = ours(image=image, question=QUESTIONS[2], **options)
    assert_same(result, theirs(image=image, question=QUESTIONS[2], **options))
    assert len(result) == min(options.get("top_k") or 5, len(ANSWERS))


def test_batches_match_one_at_a_time(pair):
    """Images of different processed sizes never share a batch (the graph takes the pixel mask as all ones)."""
    ours, _ = pair
    items = [{"image": im, "question": QUESTIONS[i % 4]} for i, im in enumerate(usable_images())]
    alone = ours(items)
    assert len({ours.processor.preprocess(load_image(im)).shape for im in usable_images()}) == 3
    for size in (3, 16):
        assert_same(ours(items, batch_size=size), alone, atol=1e-5)


def test_int8_stays_close(vision_models):
    ours, theirs = vision_models.pair("vilt", dtype="int8")
    worst, agree, total = 0.0, 0, 0
    for image in usable_images():
        for question in QUESTIONS:
            mine = {r["answer"]: r["score"] for r in ours(image=image, question=question, top_k=len(ANSWERS))}
            reference = theirs(image=image, question=question, top_k=len(ANSWERS))
            worst = max(worst, *(abs(mine[r["answer"]] - r["score"]) for r in reference))
            agree += ours(image=image, question=question, top_k=1)[0]["answer"] == reference[0]["answer"]
            total += 1
    print(f"int8: worst score difference {worst:.4f}, top answer kept on {agree} of {total}")
    assert worst < INT8_SCORE_ATOL, worst
    assert agree / total >= INT8_MIN_TOP1, (agree, total)


@pytest.mark.parametrize(
    "batch, tokens, height, width", [(1, 3, 32, 32), (2, 9, 64, 96), (3, 5, 96, 64), (2, 12, 128, 160)]
)
def test_graph_matches_unpatched_torch_at_any_image_size(vision_models, batch, tokens, height, width):
    """The exported graph against the original ViLT (random patch order and all) with an all-ones pixel_mask:
    patch grids smaller and larger than the 4x4 position grid, padded questions."""
    import onnxruntime as ort
    import torch
    from transformers import ViltForQuestionAnswering

    exported = vision_models.get("vilt")
    model = ViltForQuestionAnswering.from_pretrained(str(exported.checkpoint)).eval()
    rng = np.random.default_rng(batch)
    ids = rng.integers(5, model.config.vocab_size, size=(batch, tokens))
    mask = np.ones_like(ids)
    mask[0, tokens - 2 :] = 0
    pixels = rng.normal(size=(batch, 3, height, width)).astype(np.float32)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids), "pixel_values": pixels}
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    session = ort.InferenceSession(str(exported.onnx / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(["logits"], feeds)[0], expected, atol=1e-4, rtol=0)


def test_export_manifest_records_the_vilt_path(vision_models):
    manifest = json.loads((vision_models.get("vilt").onnx / "onnxpipe.json").read_text())
    assert manifest["task"] == "visual-question-answering"
    assert manifest["export"]["exporter"] == "vilt"
    assert any("pixel_mask is taken as all ones" in note for note in manifest["limitations"])
    fp32 = manifest["files"]["model.onnx"]
    assert [i["name"] for i in fp32["inputs"]] == ["input_ids", "attention_mask", "token_type_ids", "pixel_values"]
    assert fp32["validation"]["top1_agreement"] == 1.0 and fp32["validation"]["max_abs_diff"] < 1e-4
    assert "one question each" in manifest["validation"]["inputs"]


def test_export_command_line_takes_the_vqa_alias(vision_models, tmp_path):
    from onnxpipe import pipeline
    from onnxpipe_export.cli import main

    checkpoint = vision_models.get("vilt").checkpoint
    out = tmp_path / "vqa"
    assert main([str(checkpoint), "--task", "vqa", "--output", str(out), "--quiet"]) == 0
    ours = pipeline("vqa", model=str(out))
    image = usable_images()[1]
    assert_same(ours(image, QUESTIONS[0]), vision_models.reference("vilt")(image, QUESTIONS[0]))


def test_task_inferred_from_config_not_text_qa(vision_models, tmp_path):
    import shutil

    from onnxpipe import pipeline

    plain = tmp_path / "plain"
    shutil.copytree(vision_models.get("vilt").onnx, plain)
    (plain / "onnxpipe.json").unlink()
    assert pipeline(model=str(plain), dtype="fp32").task == "visual-question-answering"  # ViltForQuestionAnswering


def test_long_question_is_truncated_with_a_warning(pair):
    ours, _ = pair
    question = "is the " + "very " * 60 + "red car there?"
    with pytest.warns(UserWarning, match="truncated"):
        result = ours(image=usable_images()[0], question=question)
    assert len(result) == 5
    with pytest.raises(InvalidInputError, match="at most 40"):
        ours(image=usable_images()[0], question=question, truncation=False)


def test_bad_inputs_are_named(pair, tmp_path):
    ours, _ = pair
    image = picture(20, 30)
    with pytest.raises(InvalidInputError, match="needs a question"):
        ours(image)
    with pytest.raises(InvalidInputError, match="question is empty"):
        ours(image=image, question="   ")
    with pytest.raises(InvalidInputError, match="missing \\['question'\\]"):
        ours({"image": image})
    with pytest.raises(InvalidInputError, match="unknown \\['questions'\\]"):
        ours({"image": image, "question": "why?", "questions": "x"})
    with pytest.raises(InvalidInputError, match="must be a string"):
        ours(image=image, question=42)
    with pytest.raises(InvalidInputError, match="not a readable image"):
        ours(image=b"not an image at all", question="why?")
    with pytest.raises(InvalidInputError, match="not an existing file"):
        ours(image=str(tmp_path / "missing.png"), question="why?")
    with pytest.raises(InvalidInputError, match="aspect ratio"):
        ours(image=Image.fromarray(picture(7, 300)), question="why?")
    with pytest.raises(InvalidInputError, match="empty list"):
        ours(image=[], question="why?")
    with pytest.raises(InvalidInputError, match="needs an image and a question"):
        ours()


def test_bad_options_are_named(pair):
    ours, _ = pair
    image = picture(20, 30)
    with pytest.raises(InvalidOptionError, match="top_k"):
        ours(image, "why?", top_k=0)
    with pytest.raises(InvalidOptionError, match="padding"):
        ours(image, "why?", padding="longest_first")
    with pytest.raises(InvalidOptionError, match="does not take"):
        ours(image, "why?", max_new_tokens=5)  # generative VQA models are not supported


def test_pipeline_defaults_apply_and_calls_override(vision_models):
    from onnxpipe import pipeline

    ours = pipeline("visual-question-answering", model=str(vision_models.get("vilt").onnx), dtype="fp32", top_k=2)
    image = usable_images()[0]
    assert len(ours(image, "why?")) == 2
    assert len(ours(image, "why?", top_k=4)) == 4
    assert len(ours(image, "why?")) == 2  # the call's top_k did not stick


def test_image_pixel_limit_applies(vision_models):
    from onnxpipe import pipeline
    from onnxpipe.limits import Limits

    folder = str(vision_models.get("vilt").onnx)
    limited = pipeline("visual-question-answering", model=folder, dtype="fp32", limits=Limits(max_image_pixels=5_000))
    with pytest.raises(InvalidInputError, match="100x80 image.*--max-image-pixels"):
        limited(image=Image.fromarray(picture(80, 100, 3)), question="why?")
    assert limited(image=Image.fromarray(picture(40, 60, 3)), question="why?")


ISOLATED = r"""
import json, sys
for name in ("torch", "transformers", "optimum", "onnxpipe_export"):
    sys.modules[name] = None  # any import of them now raises ImportError
import numpy as np
from onnxpipe import pipeline
vqa = pipeline("vqa", model=sys.argv[1])
result = vqa(image=np.full((40, 60, 3), 90, dtype=np.uint8), question="what is it?")
print(json.dumps({"n": len(result), "loaded": [n for n in ("torch", "transformers") if sys.modules.get(n)]}))
"""


def test_runs_without_torch_or_transformers(vision_models):
    import subprocess
    import sys

    folder = vision_models.get("vilt").onnx
    out = subprocess.run([sys.executable, "-c", ISOLATED, str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"n": 5, "loaded": []}


def test_vqa_export_of_a_non_vilt_checkpoint_is_refused(vision_models, tmp_path):
    from onnxpipe_export import export
    from onnxpipe_export.errors import ConversionError

    with pytest.raises(ConversionError, match="AutoModelForVisualQuestionAnswering|ViltForQuestionAnswering"):
        export(str(vision_models.get("vit").checkpoint), task="vqa", output=str(tmp_path / "out"), quiet=True)
    assert not (tmp_path / "out").exists()
