"""image-to-image at parity with transformers.pipeline on a tiny x2 Swin2SR: the upscaled PIL image (padding border
kept, as transformers keeps it), lists and batches of mixed sizes, the picture conversion alone, options and bad
inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from support.vision_checkpoints import picture, sample_images

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.tasks.image_to_image import reconstruction_image


@pytest.fixture(scope="module")
def pair(vision_models):
    return vision_models.pair("swin2sr")


def assert_same_image(ours: Image.Image, theirs: Image.Image) -> None:
    """Same size and mode; pixels equal except where fp32 ONNX-vs-torch rounding crosses a .5 before the rounding
    to uint8 (one level, on at most 0.5% of values)."""
    assert ours.mode == theirs.mode == "RGB" and ours.size == theirs.size
    a, b = np.asarray(ours).astype(int), np.asarray(theirs).astype(int)
    assert np.abs(a - b).max() <= 1 and (a != b).mean() <= 0.005


def test_parity_on_sample_images(pair):
    ours, theirs = pair
    for image in sample_images():
        got = ours(image)
        assert_same_image(got, theirs(image))
        padded = [(side // 8 + 1) * 8 * 2 for side in image.size]  # Swin2SR's processor pads, x2 upscaling
        assert list(got.size) == padded


def test_output_depends_on_the_image(pair):
    ours, _ = pair
    outs = [np.asarray(ours(Image.fromarray(picture(24, 24, seed))), dtype=float) for seed in range(3)]
    assert min(np.abs(a - b).mean() for i, a in enumerate(outs) for b in outs[i + 1:]) > 2.0
    assert 0 < np.mean([(o == 0).mean() + (o == 255).mean() for o in outs]) < 0.5  # some clamping, not all


def test_lists_and_batches(pair):
    ours, theirs = pair
    images = sample_images()[:5] + [sample_images()[0]]
    expected = theirs(images)
    for got in (ours(images), ours(images, batch_size=4)):
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            assert_same_image(a, b)


def test_reconstruction_image_is_transformers_postprocess():
    import torch

    values = np.random.default_rng(0).normal(0.5, 0.4, size=(3, 6, 10)).astype(np.float32)
    values[0, 0, :4] = [0.5 / 255, 1.5 / 255, 2.5 / 255, 254.5 / 255]  # halves: numpy rounds to even, as transformers
    output = torch.from_numpy(values).squeeze().float().clamp_(0, 1).numpy()
    expected = (np.moveaxis(output, 0, -1) * 255.0).round().astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(reconstruction_image(values)), expected)


def test_bad_options_and_inputs_are_clear(pair):
    ours, _ = pair
    image = picture(16, 16)
    with pytest.raises(InvalidOptionError, match="head_mask"):
        ours(image, head_mask=[1.0, 0.0])
    with pytest.raises(InvalidOptionError, match="timeout"):
        ours(image, timeout=0)
    with pytest.raises(InvalidOptionError, match="does not take"):
        ours(image, scale=4)
    with pytest.raises(InvalidInputError):
        ours(b"not an image")
