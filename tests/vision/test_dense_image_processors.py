"""The processors of the dense-prediction and feature models (BiT/DINOv2, DPT, GLPN, Swin2SR) against transformers'
slow image processors, array to array, on images of varied sizes and modes; and the errors for images too small."""

from __future__ import annotations

import numpy as np
import pytest
from support.vision_checkpoints import picture, sample_images

from onnxpipe.errors import InvalidInputError
from onnxpipe.vision.images import ImageProcessor, load_image
from onnxpipe.vision.processor_sizes import center_pad, dpt_size, symmetric_pad


def _processors():
    from transformers import BitImageProcessor, DPTImageProcessor, GLPNImageProcessor, Swin2SRImageProcessor

    return {
        "bit": BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}),
        "dpt": DPTImageProcessor(size={"height": 32, "width": 32}),
        "dpt-aspect": DPTImageProcessor(size={"height": 48, "width": 48}, keep_aspect_ratio=True, ensure_multiple_of=14),
        "dpt-pad": DPTImageProcessor(size={"height": 30, "width": 44}, do_pad=True, size_divisor=16, resample=2),
        "glpn": GLPNImageProcessor(size_divisor=32),
        "glpn-16": GLPNImageProcessor(size_divisor=16, resample=3),
        "swin2sr": Swin2SRImageProcessor(size_divisor=8),
        "swin2sr-4": Swin2SRImageProcessor(pad_size=4),
    }


@pytest.mark.parametrize("name", ["bit", "dpt", "dpt-aspect", "dpt-pad", "glpn", "glpn-16", "swin2sr", "swin2sr-4"])
def test_preprocessing_matches_transformers(name, tmp_path):
    theirs = _processors()[name]
    theirs.save_pretrained(str(tmp_path))
    import json

    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    ours = ImageProcessor.from_config(config)
    smallest = 32 if name == "glpn" else 16 if name == "glpn-16" else 2
    checked = 0
    for item in sample_images():
        image = load_image(item)
        if min(image.size) < smallest or image.size == (2, 2):
            continue
        try:
            expected = theirs(image, return_tensors="np")["pixel_values"][0]
        except ValueError:  # a side resized to 0 pixels (extreme aspect ratios): ours says so
            with pytest.raises(InvalidInputError, match="aspect ratio"):
                ours.preprocess(image)
            continue
        got = ours.preprocess(image)
        assert got.shape == expected.shape, (name, image.size)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=f"{name} {image.size}")
        checked += 1
    assert checked >= 8


def test_too_small_images_are_clear():
    glpn = ImageProcessor.from_config({"image_processor_type": "GLPNImageProcessor", "size_divisor": 32})
    with pytest.raises(InvalidInputError, match="size_divisor"):
        glpn.preprocess(load_image(picture(20, 64)))
    with pytest.raises(InvalidInputError, match="aspect ratio"):
        dpt_size(2, 400, {"height": 32, "width": 32}, True, 32)


def test_paddings():
    values = np.arange(2 * 3 * 1, dtype=np.float32).reshape(2, 3, 1)
    padded = center_pad(values, 4)
    assert padded.shape == (4, 4, 1) and padded[1:3, 0:3, 0].tolist() == values[..., 0].tolist()
    mirrored = symmetric_pad(values, 4)
    assert mirrored.shape == (4, 4, 1) and mirrored[2, :3, 0].tolist() == values[1, :, 0].tolist()
    assert symmetric_pad(np.zeros((8, 8, 3), np.float32), 8).shape == (16, 16, 3)  # a full block more, as transformers
