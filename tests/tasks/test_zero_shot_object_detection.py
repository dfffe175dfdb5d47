"""zero-shot-object-detection at parity with transformers.pipeline on tiny OWL-ViT and OWLv2 checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from support.parity import assert_same
from support.vision_checkpoints import OWL_MAX_TOKENS, picture, sample_images

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.tasks.object_detection import corners
from onnxpipe.tasks.zero_shot_object_detection import Query
from onnxpipe.tasks.zero_shot_object_detection_images import OwlImageProcessor
from onnxpipe.vision.images import load_image

ARCHS = ["owlvit", "owlv2"]
LABELS = ["cat", "dog", "a red car", "snow on a mountain"]
BOX_ATOL = 1e-3  # pixels, boxes before transformers truncates them to ints
# int8 (dynamic, per-channel, SmoothQuant) on these tiny random models, over sample_images() x LABELS at
# threshold 0, score by rank: largest difference to fp32 0.0062 (OWL-ViT) and 0.0059 (OWLv2), same top box on
# 14/15 images each (x86 with AVX-512 VNNI)
INT8_SCORE_ATOL = 0.05


@pytest.fixture(scope="module", params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def pair(arch, vision_models):
    return vision_models.pair(arch)


def test_outputs_depend_on_the_image_and_the_labels(pair):
    ours, _ = pair
    tops = {tuple(ours(image, candidate_labels=LABELS, threshold=0.0)[0]["box"].values()) for image in sample_images()}
    assert len(tops) >= 4
    image = sample_images()[0]
    by_label = {label: ours(image, candidate_labels=[label], threshold=0.0) for label in LABELS}
    assert len({tuple(r[0]["box"].values()) for r in by_label.values()}) >= 2
    assert len({round(r[0]["score"], 4) for r in by_label.values()}) == len(LABELS)


def test_parity_on_every_sample_image(pair):
    ours, theirs = pair
    for image in sample_images():
        expected = theirs(image, candidate_labels=LABELS, threshold=0.0)
        assert len(expected) > 40  # every box of every label: scores, labels and boxes are all compared
        assert_same(ours(image, candidate_labels=LABELS, threshold=0.0), expected)


def test_preprocessing_and_float_boxes_match_transformers(arch, pair, vision_models):
    """pixel_values equal to the slow transformers processor's; boxes in original pixels within BOX_ATOL before
    the int truncation (OWLv2: relative to the padded square, scaled by the longer side)."""
    import torch

    ours, theirs = pair
    worst_pixels = worst_box = 0.0
    for image in [im for im in sample_images() if im.mode == "RGB"][:6]:
        pixels = theirs.image_processor(image, return_tensors="pt")["pixel_values"]
        mine = ours.processor.preprocess(image)
        worst_pixels = max(worst_pixels, float(np.abs(mine - pixels[0].numpy()).max()))
        tokens = theirs.tokenizer(LABELS, padding=True, return_tensors="pt")
        with torch.inference_mode():
            output = theirs.model(**tokens, pixel_values=pixels)
        target = torch.tensor([[image.height, image.width]], dtype=torch.int32)
        expected = theirs.image_processor.post_process_object_detection(output, threshold=-1.0, target_sizes=target)
        batch = ours.collate(ours.prepare([_query(image)], {**ours.defaults, "candidate_labels": LABELS}), {})
        boxes = ours.session.run(batch.feeds())["pred_boxes"][0]
        scaled = corners(boxes) * ours.processor.box_scale(image.height, image.width)
        worst_box = max(worst_box, float(np.abs(scaled - expected[0]["boxes"].numpy()).max()))
    assert worst_pixels < 1e-5, worst_pixels
    assert worst_box < BOX_ATOL, worst_box


def _query(image):
    return Query(image, tuple(LABELS))


@pytest.mark.parametrize("size", [45, 960])
def test_owlv2_resize_matches_transformers_at_other_sizes(size):
    """OWLv2's pad + anti-aliased resize at a real checkpoint's size (960) and an odd one, shrinking and growing."""
    import json

    from transformers import Owlv2ImageProcessor

    theirs = Owlv2ImageProcessor(size={"height": size, "width": size})
    ours = OwlImageProcessor.from_config(json.loads(theirs.to_json_string()))
    for image in [Image.fromarray(picture(1300, 700, 3)), Image.fromarray(picture(31, 60, 4)), sample_images()[2]]:
        rgb = load_image(image)
        expected = theirs(rgb, return_tensors="np")["pixel_values"][0]
        np.testing.assert_allclose(ours.preprocess(rgb), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "options",
    [{}, {"threshold": 0.5}, {"threshold": 0.3, "top_k": 3}, {"top_k": 0}, {"threshold": 0.0, "top_k": 100}],
)
def test_options_match(pair, options):
    ours, theirs = pair
    image = sample_images()[1]
    assert_same(ours(image, candidate_labels=LABELS, **options), theirs(image, candidate_labels=LABELS, **options))


@pytest.mark.parametrize("labels", ["cat,dog", "cat, a red car ,snow", ["x"], ("a", "b", "c d e f g", "dog", "sea")])
def test_label_forms_match(pair, labels):
    ours, theirs = pair
    image = sample_images()[4]
    assert_same(ours(image, candidate_labels=labels, threshold=0.0), theirs(image, candidate_labels=labels, threshold=0.0))
    assert_same(ours(image, text_queries=labels, threshold=0.0), theirs(image, text_queries=labels, threshold=0.0))


def test_input_forms_and_batches(pair):
    ours, theirs = pair
    images = sample_images()[:5]
    per_image = [LABELS[: 1 + i % 4] for i in range(len(images))]
    dicts = [{"image": im, "candidate_labels": labels} for im, labels in zip(images, per_image)]
    expected = theirs(dicts, threshold=0.05)
    assert_same(ours(dicts, threshold=0.05), expected)
    assert_same(ours(dicts, threshold=0.05, batch_size=3), expected)  # same-label-count images share a run
    assert_same(ours(images, candidate_labels=per_image, threshold=0.05), expected)
    assert_same(ours(dicts[2], threshold=0.05), expected[2])
    # a flat list of labels with a list of images: every image gets every label (transformers zips them)
    flat = ours(images, candidate_labels=LABELS, batch_size=4)
    assert_same(flat, [theirs(im, candidate_labels=LABELS) for im in images])


def test_pipeline_default_labels_apply_and_calls_override(arch, vision_models):
    from onnxpipe import pipeline

    ours = pipeline("zero-shot-object-detection", model=str(vision_models.get(arch).onnx), candidate_labels=LABELS)
    image = sample_images()[0]
    assert ours(image, threshold=0.0) == ours(image, candidate_labels=LABELS, threshold=0.0)
    assert {r["label"] for r in ours(image, candidate_labels=["x"], threshold=0.0)} == {"x"}
    assert {r["label"] for r in ours({"image": image, "candidate_labels": "y"}, threshold=0.0)} == {"y"}
    assert {r["label"] for r in ours(image, threshold=0.0)} == set(LABELS)  # the call's labels did not stick


def test_int8_stays_close(arch, vision_models):
    ours, theirs = vision_models.pair(arch, dtype="int8")
    assert ours.dtype == "int8"
    worst, same_top = 0.0, 0
    for image in sample_images():
        mine = ours(image, candidate_labels=LABELS, threshold=0.0)
        reference = theirs(image, candidate_labels=LABELS, threshold=0.0)
        difference = np.abs(np.array([r["score"] for r in mine]) - np.array([r["score"] for r in reference]))
        worst = max(worst, float(difference.max()))  # score by rank: boxes whose scores are close may swap
        same_top += (mine[0]["label"], mine[0]["box"]) == (reference[0]["label"], reference[0]["box"])
    print(f"int8 {arch}: worst score difference {worst:.4f}, same top box on {same_top}/{len(sample_images())}")
    assert worst < INT8_SCORE_ATOL, worst


def test_bad_input_is_a_clear_error(pair):
    ours, _ = pair
    image = picture(20, 24)
    cases = [
        (InvalidOptionError, "needs candidate_labels", lambda: ours(image)),
        (InvalidOptionError, "non-empty list", lambda: ours(image, candidate_labels=[])),
        (InvalidOptionError, "empty string", lambda: ours(image, candidate_labels=" ")),
        (InvalidOptionError, "strings only", lambda: ours(image, candidate_labels=["cat", 3])),
        (InvalidOptionError, "strings only", lambda: ours({"image": image, "candidate_labels": [None]})),
        (InvalidOptionError, "not both", lambda: ours(image, candidate_labels=["a"], text_queries=["b"])),
        (InvalidInputError, "needs an image", lambda: ours(candidate_labels=["cat"])),
        (InvalidInputError, "needs an image", lambda: ours([image, None], candidate_labels=["cat"])),
        (InvalidInputError, "empty list of images", lambda: ours([], candidate_labels=["cat"])),
        (InvalidInputError, "'image' \\(required\\)", lambda: ours({"candidate_labels": ["cat"]})),
        (InvalidInputError, "'image' \\(required\\)", lambda: ours({"image": image, "labels": ["cat"]})),
        (InvalidInputError, "not both", lambda: ours({"image": image}, candidate_labels=["cat"])),
        (InvalidInputError, "mixing", lambda: ours([{"image": image}, image], candidate_labels=["cat"])),
        (InvalidInputError, "one per image", lambda: ours([image, image], candidate_labels=[["cat"]])),
        (InvalidInputError, "one per image", lambda: ours(image, candidate_labels=[["cat"], ["dog"]])),
        (InvalidInputError, f"at most {OWL_MAX_TOKENS}", lambda: ours(image, candidate_labels=["cat " * 20])),
        (InvalidInputError, "1x1", lambda: ours(Image.new("RGB", (1, 1)), candidate_labels=["cat"])),
        (InvalidOptionError, "threshold", lambda: ours(image, candidate_labels=["cat"], threshold="high")),
        (InvalidOptionError, "top_k", lambda: ours(image, candidate_labels=["cat"], top_k=-1)),
        (InvalidOptionError, "does not take", lambda: ours(image, candidate_labels=["cat"], nms=0.3)),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()


def test_wrong_graph_and_processor_are_refused(vision_models, tmp_path):
    import json
    import shutil

    from onnxpipe import pipeline
    from onnxpipe.errors import MissingModelFileError

    with pytest.raises(InvalidOptionError, match="not an OWL-ViT-style detector"):
        pipeline("zero-shot-object-detection", model=str(vision_models.get("clip").onnx))
    folder = tmp_path / "owl"
    shutil.copytree(vision_models.get("owlvit").onnx, folder)
    config = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**config, "image_processor_type": "DetrImageProcessor"}))
    with pytest.raises(MissingModelFileError, match="OwlViTImageProcessor, Owlv2ImageProcessor"):
        pipeline("zero-shot-object-detection", model=str(folder))


def test_task_inferred_from_config_without_manifest(arch, vision_models, tmp_path):
    import shutil

    from onnxpipe import pipeline

    folder = tmp_path / "plain"
    shutil.copytree(vision_models.get(arch).onnx, folder)
    (folder / "onnxpipe.json").unlink()
    assert pipeline(model=str(folder), dtype="fp32").task == "zero-shot-object-detection"


def test_served_route(vision_models, tmp_path):
    """`onnxpipe serve`: a base64 image with parameters.candidate_labels, or the {"image", "candidate_labels"} dict,
    answers as the pipeline does; missing labels are a 422 naming the fix."""
    pytest.importorskip("starlette")
    import base64
    import io

    from support.live_server import ServerProcess, post

    from onnxpipe import pipeline

    folder = vision_models.get("owlvit").onnx
    direct = pipeline("zero-shot-object-detection", model=str(folder), dtype="fp32")
    image = sample_images()[0]
    data = io.BytesIO()
    image.save(data, format="PNG")
    encoded = base64.b64encode(data.getvalue()).decode()
    srv = ServerProcess({"owl": folder}, tmp_path / "server.log")
    try:
        url = srv.url + "/models/owl"
        answer = post(url, {"inputs": encoded, "parameters": {"candidate_labels": LABELS, "top_k": 5}})
        assert answer.status_code == 200, answer.text
        assert_same(answer.json(), direct(image, candidate_labels=LABELS, top_k=5), 1e-5)
        answer = post(url, {"inputs": {"image": encoded, "candidate_labels": "cat,dog"}, "parameters": {"threshold": 0.0}})
        assert answer.status_code == 200, answer.text
        assert_same(answer.json(), direct(image, candidate_labels="cat,dog", threshold=0.0), 1e-5)
        refused = post(url, {"inputs": encoded})
        assert refused.status_code == 422 and "candidate_labels" in refused.json()["error"], refused.text
    finally:
        srv.stop()
