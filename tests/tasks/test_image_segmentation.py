"""image-segmentation (semantic) at parity with transformers.pipeline on a tiny Segformer checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from support.vision_checkpoints import picture, sample_images

from onnxpipe.errors import InvalidOptionError
from onnxpipe.tasks.image_segmentation import upsampled_argmax


@pytest.fixture(scope="module")
def pair(vision_models):
    return vision_models.pair("segformer")


def assert_same_segments(ours: list, theirs: list) -> None:
    """Same labels in the same order, score None, and masks equal pixel for pixel (PIL "L", original size)."""
    assert [s["label"] for s in ours] == [s["label"] for s in theirs]
    for a, b in zip(ours, theirs):
        assert a["score"] is None and b["score"] is None
        assert a["mask"].mode == b["mask"].mode == "L" and a["mask"].size == b["mask"].size
        np.testing.assert_array_equal(np.asarray(a["mask"]), np.asarray(b["mask"]))


@pytest.mark.parametrize("shape", [(4, 8, 8, 33, 47), (3, 16, 12, 5, 7), (5, 8, 8, 8, 8), (2, 3, 9, 300, 7)])
def test_upsampled_argmax_matches_torch_interpolate(shape):
    import torch

    classes, h, w, height, width = shape
    logits = np.random.default_rng(0).normal(size=(classes, h, w)).astype(np.float32)
    resized = torch.nn.functional.interpolate(
        torch.from_numpy(logits)[None], size=(height, width), mode="bilinear", align_corners=False
    )
    np.testing.assert_array_equal(upsampled_argmax(logits, height, width), resized[0].argmax(dim=0).numpy())


def test_outputs_depend_on_the_image(pair):
    ours, _ = pair
    layouts = {tuple(s["label"] for s in ours(image)) for image in sample_images()}
    assert len(layouts) >= 3


def test_parity_on_every_sample_image(pair):
    ours, theirs = pair
    for image in sample_images():
        assert_same_segments(ours(image), theirs(image))
        assert_same_segments(ours(image, subtask="semantic"), theirs(image, subtask="semantic"))


def test_lists_and_batches(pair):
    ours, theirs = pair
    images = sample_images()[:5]
    expected = theirs(images)
    for got in (ours(images), ours(images, batch_size=3)):
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            assert_same_segments(a, b)


def test_int8_masks_mostly_agree(vision_models):
    """int8 on this tiny random Segformer: at least 90% of pixels keep their class (measured: 98.7-100%)."""
    from onnxpipe import pipeline

    folder = str(vision_models.get("segformer").onnx)
    fp32, int8 = pipeline("image-segmentation", model=folder, dtype="fp32"), pipeline("image-segmentation", model=folder, dtype="int8")
    for image in sample_images():
        a = {s["label"]: np.asarray(s["mask"]) > 0 for s in fp32(image)}
        b = {s["label"]: np.asarray(s["mask"]) > 0 for s in int8(image)}
        agree = sum((mask & b[label]).sum() for label, mask in a.items() if label in b)
        assert agree / (image.size[0] * image.size[1]) >= 0.9, image.size


def test_unsupported_subtasks_and_options_are_clear(pair):
    ours, theirs = pair
    with pytest.raises(InvalidOptionError, match="semantic"):
        ours(picture(20, 20), subtask="panoptic")
    with pytest.raises(InvalidOptionError, match="panoptic / instance"):
        ours(picture(20, 20), threshold=0.5)
