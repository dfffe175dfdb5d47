"""ViLT preprocessing in image.py against transformers' ViltImageProcessor: pixel_values allclose 1e-5 on odd sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from support.vision_checkpoints import picture, sample_images

from onnxpipe.errors import InvalidInputError
from onnxpipe.vision.images import ImageProcessor, load_image, pad_batch

IMAGES = [*sample_images(), Image.fromarray(picture(200, 60, 4)), Image.fromarray(picture(31, 1000, 6)),
          Image.fromarray(picture(384, 640, 8))]
LARGE = Image.fromarray(picture(3000, 4000, 3))  # downscaled: checked with the default processor only (slow)


def _processors() -> dict:
    from transformers import ViltImageProcessor

    return {
        "default": ViltImageProcessor(),  # shortest_edge 384, longest 639, multiples of 32, bicubic
        "small": ViltImageProcessor(size={"shortest_edge": 64}, size_divisor=32),
        "divisor-16-bilinear": ViltImageProcessor(size={"shortest_edge": 50}, size_divisor=16, resample=2),
        "imagenet": ViltImageProcessor(size={"shortest_edge": 96}, image_mean=[0.485, 0.456, 0.406],
                                       image_std=[0.229, 0.224, 0.225]),
    }


PROCESSORS = _processors()


@pytest.mark.parametrize("name", sorted(PROCESSORS))
def test_pixel_values_match_vilt_image_processor(name):
    theirs = PROCESSORS[name]
    ours = ImageProcessor.from_config(json.loads(theirs.to_json_string()))
    compared = refused = 0
    for image in IMAGES + ([LARGE] if name == "default" else []):
        rgb = load_image(image)
        try:
            expected = theirs(images=[rgb], return_tensors="np")
        except ValueError:  # too thin: a side rounds to 0 pixels, PIL refuses; ours must refuse clearly
            with pytest.raises(InvalidInputError, match="aspect ratio"):
                ours.preprocess(rgb)
            refused += 1
            continue
        got = ours.preprocess(rgb)
        assert got.shape == expected["pixel_values"][0].shape, (name, rgb.size)
        np.testing.assert_allclose(got, expected["pixel_values"][0], atol=1e-5, rtol=0, err_msg=f"{name} {rgb.size}")
        assert expected["pixel_mask"][0].all()  # one image: nothing padded, the mask the graph assumes
        compared += 1
    assert compared >= len(IMAGES) - 3 and refused <= 3


def test_legacy_config_with_int_size_and_no_resample():
    """dandelin/vilt-b32-finetuned-vqa's preprocessor_config.json: feature_extractor_type, int size, no do_pad."""
    from transformers import ViltImageProcessor

    config = {"do_normalize": True, "do_resize": True, "feature_extractor_type": "ViltFeatureExtractor",
              "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": 384, "size_divisor": 32}
    theirs = ViltImageProcessor.from_dict(dict(config))
    ours = ImageProcessor.from_config(config)
    rgb = load_image(IMAGES[5])
    expected = theirs(images=[rgb], return_tensors="np")["pixel_values"][0]
    np.testing.assert_allclose(ours.preprocess(rgb), expected, atol=1e-5, rtol=0)


def test_batch_of_different_sizes_pads_as_transformers():
    theirs = PROCESSORS["small"]
    ours = ImageProcessor.from_config(json.loads(theirs.to_json_string()))
    images = [load_image(IMAGES[i]) for i in (0, -1, 1)]
    expected = theirs(images=images, return_tensors="np")
    values, mask = pad_batch([ours.preprocess(im) for im in images])
    np.testing.assert_allclose(values, expected["pixel_values"], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(mask, expected["pixel_mask"])
    assert not mask.all()  # the sizes differ, so this batch really is padded
