"""depth-estimation at parity with transformers.pipeline on tiny DPT and GLPN checkpoints: predicted_depth (numpy
here, a tensor there) and the depth picture; the post-processing alone (bicubic resize + 0-255 scaling) fed torch's
own raw depth; options and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from support.vision_checkpoints import picture, sample_images

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.tasks.depth_estimation import depth_image
from onnxpipe.vision.resize import bicubic_resize

ARCHS = ["dpt", "glpn"]


def _images(arch: str) -> list:
    """Sample images the model takes: GLPN needs 32 pixels a side (its size_divisor)."""
    return [i for i in sample_images() if arch != "glpn" or min(i.size) >= 32]


@pytest.fixture(scope="module", params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def pair(arch, vision_models):
    return vision_models.pair(arch)


def assert_same_depth(ours: dict, theirs: dict) -> None:
    """predicted_depth to 1e-4 of its range; the depth picture equal except a few pixels one level off, where fp32
    ONNX-vs-torch rounding crosses an integer before the uint8 truncation."""
    expected = theirs["predicted_depth"].numpy()
    assert isinstance(ours["predicted_depth"], np.ndarray) and ours["predicted_depth"].dtype == np.float32
    assert ours["predicted_depth"].shape == expected.shape
    span = float(expected.max() - expected.min()) or 1.0
    np.testing.assert_allclose(ours["predicted_depth"], expected, rtol=0, atol=1e-4 * max(span, float(np.abs(expected).max())))
    a, b = np.asarray(ours["depth"]).astype(int), np.asarray(theirs["depth"]).astype(int)
    assert ours["depth"].mode == theirs["depth"].mode == "L" and ours["depth"].size == theirs["depth"].size
    assert np.abs(a - b).max() <= 1 and (a != b).mean() <= 0.01


def test_parity_on_sample_images(arch, pair):
    ours, theirs = pair
    for image in _images(arch):
        assert_same_depth(ours(image), theirs(image))


def test_postprocessing_alone_equals_transformers(arch, vision_models):
    """Torch's raw predicted_depth through our bicubic resize and scaling vs the pipeline's postprocess: the depth
    picture is equal pixel for pixel (up to float32 rounding of the resize: at most 0.1% of pixels one level off)."""
    import torch

    reference = vision_models.reference(arch)
    for image in [i.convert("RGB") for i in _images(arch)[:6]]:
        inputs = reference.image_processor(images=image, return_tensors="pt")
        with torch.no_grad():
            outputs = reference.model(**inputs)
        raw = outputs.predicted_depth
        outputs["target_size"] = image.size[::-1]
        expected = reference.postprocess(outputs)
        resized = bicubic_resize(raw[0].numpy(), image.height, image.width)
        np.testing.assert_allclose(resized, expected["predicted_depth"].numpy(), rtol=1e-5, atol=1e-5 * float(raw.abs().max()))
        a, b = np.asarray(depth_image(resized)).astype(int), np.asarray(expected["depth"]).astype(int)
        assert np.abs(a - b).max() <= 1 and (a != b).mean() <= 0.001


@pytest.mark.parametrize("shape", [(8, 8, 33, 47), (16, 12, 5, 7), (64, 64, 480, 640), (24, 32, 24, 32), (3, 9, 300, 7), (10, 10, 1, 5)])
def test_bicubic_resize_matches_torch_interpolate(shape):
    import torch

    h, w, height, width = shape
    plane = (np.random.default_rng(0).normal(size=(h, w)) * 300).astype(np.float32)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(plane)[None, None], size=(height, width), mode="bicubic", align_corners=False
    )[0, 0].numpy()
    got = bicubic_resize(plane, height, width)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * float(np.abs(expected).max()))  # measured: 4.6e-6


def test_depth_depends_on_the_image(arch, pair):
    ours, _ = pair
    maps = [np.asarray(ours(Image.fromarray(picture(64, 64, seed)))["depth"], dtype=float) for seed in range(4)]
    assert min(np.abs(a - b).mean() for i, a in enumerate(maps) for b in maps[i + 1:]) > 1.0


def test_lists_batches_and_parameters(arch, pair):
    ours, theirs = pair
    images = _images(arch)[:4] + [_images(arch)[0]]
    expected = theirs(images)
    for got in (ours(images), ours(images, batch_size=3)):
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            assert_same_depth(a, b)
    assert_same_depth(ours(images[0], parameters={"timeout": 5}), theirs(images[0], parameters={"timeout": 5}))


def test_flat_depth_gives_a_black_picture():
    assert np.asarray(depth_image(np.full((4, 5), 3.0, np.float32))).tolist() == [[0] * 5] * 4


def test_bad_options_and_inputs_are_clear(arch, pair):
    ours, _ = pair
    image = picture(64, 64)
    with pytest.raises(InvalidOptionError, match="parameters"):
        ours(image, parameters={"top_k": 1})
    with pytest.raises(InvalidOptionError, match="timeout"):
        ours(image, timeout="soon")
    with pytest.raises(InvalidOptionError, match="does not take"):
        ours(image, threshold=0.5)
    with pytest.raises(InvalidInputError):
        ours(None)
    if arch == "glpn":
        with pytest.raises(InvalidInputError, match="size_divisor"):
            ours(picture(20, 64))
