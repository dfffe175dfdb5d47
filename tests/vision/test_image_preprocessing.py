"""image.py against transformers' image processors (pixel_values allclose 1e-5) and its input handling."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image
from support.vision_checkpoints import picture, sample_images

from onnxpipe.errors import InvalidInputError, MissingModelFileError
from onnxpipe.vision.images import ImageProcessor, load_image, pad_batch


def _processors() -> dict:
    from transformers import (
        CLIPImageProcessor,
        ConvNextImageProcessor,
        DeiTImageProcessor,
        DetrImageProcessor,
        SegformerImageProcessor,
        ViTImageProcessor,
        YolosImageProcessor,
    )

    return {
        "vit": ViTImageProcessor(size={"height": 32, "width": 40}),
        "deit": DeiTImageProcessor(size={"height": 40, "width": 40}, crop_size={"height": 32, "width": 36}),
        "convnext-crop": ConvNextImageProcessor(size={"shortest_edge": 40}, crop_pct=0.875, resample=3),
        "convnext-warp": ConvNextImageProcessor(size={"shortest_edge": 384}),
        "segformer": SegformerImageProcessor(size={"height": 48, "width": 40}),
        "clip": CLIPImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}),
        "detr": DetrImageProcessor(size={"shortest_edge": 48, "longest_edge": 80}),
        "yolos": YolosImageProcessor(size={"shortest_edge": 48, "longest_edge": 80}),
    }


PROCESSORS = _processors()


def ours_of(theirs) -> ImageProcessor:
    """Our processor from the JSON transformers writes with save_pretrained."""
    import json

    return ImageProcessor.from_config(json.loads(theirs.to_json_string()))


IMAGES = [im for im in sample_images()] + [Image.fromarray(picture(3000, 4000, 3)), Image.fromarray(picture(200, 60, 4))]


@pytest.mark.parametrize("name", sorted(PROCESSORS))
def test_pixel_values_match_transformers(name):
    theirs = PROCESSORS[name]
    ours = ours_of(theirs)
    compared = 0
    for image in IMAGES:
        rgb = load_image(image)
        try:
            expected = theirs(images=[rgb], return_tensors="np")["pixel_values"][0]
        except ValueError:  # YOLOS on 7x300: too thin to resize; ours must refuse too
            with pytest.raises(InvalidInputError, match="aspect ratio"):
                ours.preprocess(rgb)
            continue
        got = ours.preprocess(rgb)
        assert got.shape == expected.shape, (name, rgb.size)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0, err_msg=f"{name} {rgb.size}")
        compared += 1
    assert compared >= len(IMAGES) - 2


@pytest.mark.parametrize("name", ["detr", "yolos"])
def test_batch_padding_and_pixel_mask_match_transformers(name):
    theirs = PROCESSORS[name]
    ours = ours_of(theirs)
    images = [load_image(IMAGES[i]) for i in (0, 1, 5)]
    expected = theirs(images=images, return_tensors="np")
    values, mask = pad_batch([ours.preprocess(im) for im in images])
    np.testing.assert_allclose(values, expected["pixel_values"], atol=1e-5, rtol=0)
    if "pixel_mask" in expected:
        np.testing.assert_array_equal(mask, expected["pixel_mask"])


def test_one_pixel_image_is_refused_as_transformers_fails_on_it():
    with pytest.raises(ValueError):
        PROCESSORS["vit"](images=[Image.new("RGB", (1, 1))], return_tensors="np")
    with pytest.raises(InvalidInputError, match="1x1"):
        ours_of(PROCESSORS["vit"]).preprocess(Image.new("RGB", (1, 1)))


def test_unknown_processor_names_the_supported_ones():
    with pytest.raises(MissingModelFileError, match="ViTImageProcessor"):
        ImageProcessor.from_config({"image_processor_type": "SamImageProcessor"})
    with pytest.raises(MissingModelFileError, match="shortest_edge"):
        ImageProcessor.from_config({"image_processor_type": "DetrImageProcessor", "size": {"max_height": 9, "max_width": 9}})


def test_legacy_int_sizes_read_as_transformers():
    from transformers import ConvNextImageProcessor, ViTImageProcessor

    image = load_image(picture(50, 70, 6))
    for theirs in (ViTImageProcessor(size=24), ConvNextImageProcessor(size=24)):
        legacy = {**__import__("json").loads(theirs.to_json_string()), "size": 24}
        expected = theirs(images=[image], return_tensors="np")["pixel_values"][0]
        np.testing.assert_allclose(ImageProcessor.from_config(legacy).preprocess(image), expected, atol=1e-5, rtol=0)


# -- inputs -----------------------------------------------------------------------------------
def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_input_form_gives_the_same_rgb_image(tmp_path):
    array = picture(20, 30, 1)
    image = Image.fromarray(array)
    path = tmp_path / "a.png"
    image.save(path)
    data = _png(image)
    forms = [image, array, data, bytearray(data), str(path), path, base64.b64encode(data).decode(), base64.encodebytes(data).decode(),
             "data:image/png;base64," + base64.b64encode(data).decode()]
    for form in forms:
        loaded = load_image(form)
        assert loaded.mode == "RGB" and np.array_equal(np.asarray(loaded), array), type(form)


def test_modes_convert_as_transformers_load_image():
    from transformers.image_utils import load_image as theirs

    for image in sample_images():
        assert np.array_equal(np.asarray(load_image(image)), np.asarray(theirs(image))), image.mode


def test_exif_orientation_is_applied():
    image = Image.fromarray(picture(10, 20, 2))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert load_image(buffer.getvalue()).size == (10, 20)


@pytest.mark.parametrize(
    "bad, match",
    [
        (b"not an image at all", "not a readable image"),
        ("/no/such/file.png", "not an existing file"),
        (Image.new("RGB", (0, 4)), "zero size"),
        (np.zeros((0, 5, 3), dtype=np.uint8), "zero size"),
        (42, "An image must be"),
        (None, "An image must be"),
        (np.zeros((4, 4, 3), dtype=np.float32), "uint8"),
        (np.zeros((4, 4, 5), dtype=np.uint8), "shape"),
        ("http://127.0.0.1:9/cat.png", "offline"),
    ],
)
def test_bad_inputs_raise_clear_errors(bad, match):
    with pytest.raises(InvalidInputError, match=match):
        load_image(bad, timeout=2)


def test_pillow_is_imported_only_by_image_code():
    """Pillow is the optional `vision` extra: only image.py and the image tasks import it (through image.py)."""
    import pathlib
    import re
    import subprocess
    import sys

    import onnxpipe

    root = pathlib.Path(onnxpipe.__file__).parent
    pattern = re.compile(r"^\s*(import|from)\s+PIL\b", re.M)
    assert [p.name for p in root.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))] == ["images.py"]
    code = "import sys, onnxpipe, onnxpipe.registry, onnxpipe.pipelines; print('PIL' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.parametrize("height", [1, 3])
def test_one_or_three_pixel_high_images_are_read_channels_last(height):
    """transformers guesses the channel axis and reads these rows as channels (garbage for 3, a crash for 1);
    onnxpipe knows the layout: its values equal transformers' when told input_data_format="channels_last"."""
    theirs = PROCESSORS["vit"]
    image = Image.fromarray(picture(height, 40, 8))
    expected = theirs(images=[image], input_data_format="channels_last", return_tensors="np")["pixel_values"][0]
    np.testing.assert_allclose(ours_of(theirs).preprocess(image), expected, atol=1e-5, rtol=0)
