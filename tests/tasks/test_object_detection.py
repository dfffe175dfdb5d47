"""object-detection at parity with transformers.pipeline on tiny DETR (ResNet backbone) and YOLOS checkpoints."""

from __future__ import annotations

import pytest
from PIL import Image
from support.parity import assert_same
from support.vision_checkpoints import picture, sample_images

from onnxpipe.errors import InvalidInputError, InvalidOptionError

ARCHS = ["detr", "yolos"]
INT8_SCORE_ATOL = 0.3
THRESHOLD = 0.1  # tiny random models score ~0.2-0.5: keep most queries, so boxes are compared too


def _usable(image) -> bool:
    """YOLOS cannot take 7x300 (sides round down to 0); transformers raises, ours too (tested below)."""
    return min(image.size) > 7


@pytest.fixture(scope="module", params=ARCHS)
def pair(request, vision_models):
    return vision_models.pair(request.param)


def test_outputs_depend_on_the_image(pair):
    ours, _ = pair
    boxes = {tuple(ours(image, threshold=0.0)[0]["box"].values()) for image in sample_images() if _usable(image)}
    assert len(boxes) >= 3


def test_parity_on_every_sample_image(pair):
    ours, theirs = pair
    for image in sample_images():
        if _usable(image):
            result = ours(image, threshold=THRESHOLD)
            assert result, "nothing detected: the comparison would prove little"
            assert_same(result, theirs(image, threshold=THRESHOLD))


def test_default_threshold_and_lists(pair):
    ours, theirs = pair
    images = [im for im in sample_images() if _usable(im)][:5]
    expected = theirs(images)
    assert_same(ours(images), expected)
    assert_same(ours(images, batch_size=4), expected)  # only same-size images share a batch: no padding


def test_too_thin_image_for_yolos_is_a_clear_error(vision_models):
    ours, theirs = vision_models.pair("yolos")
    with pytest.raises(ValueError):
        theirs(Image.fromarray(picture(7, 300)))
    with pytest.raises(InvalidInputError, match="aspect ratio"):
        ours(picture(7, 300))


def test_int8_boxes_and_scores(vision_models):
    """int8 on these tiny random models (near-uniform class scores) drifts: measured over the usable sample
    images (min side > 7), the worst score difference to fp32 was 0.06 (DETR) and 0.24 (YOLOS), with 75% and 73%
    of queries keeping their label. The test bounds scores only; labels of near-tied classes may flip."""
    from onnxpipe import pipeline

    for arch in ARCHS:
        exported = vision_models.get(arch)
        fp32 = pipeline("object-detection", model=str(exported.onnx), dtype="fp32")
        int8 = pipeline("object-detection", model=str(exported.onnx), dtype="int8")
        worst = 0.0
        for image in sample_images():
            if _usable(image):
                a, b = fp32(image, threshold=0.0), int8(image, threshold=0.0)
                assert len(a) == len(b)
                worst = max(worst, *(abs(x["score"] - y["score"]) for x, y in zip(a, b)))
        assert worst < INT8_SCORE_ATOL, (arch, worst)


def test_bad_options(pair):
    ours, _ = pair
    with pytest.raises(InvalidOptionError, match="threshold"):
        ours(picture(30, 30), threshold="high")
    with pytest.raises(InvalidOptionError, match="timeout"):
        ours(picture(30, 30), timeout=-1)
