"""image-to-text with a tiny captioning Pix2Struct at parity with transformers' ImageToTextPipeline: greedy and beam
search, the default 256 new tokens, batches; the numpy patch processor against transformers'; the export's
encoder inputs; and clear errors for prompt, VQA checkpoints and bad input."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image
from support.pix2struct_checkpoints import build_pix2struct_checkpoint, pictures
from support.vision_checkpoints import picture

from onnxpipe import pipeline
from onnxpipe.errors import InvalidInputError, InvalidOptionError, MissingModelFileError
from onnxpipe.registry import task_from_architectures
from onnxpipe.vision.pix2struct import Pix2StructProcessor

SHORT = {"max_new_tokens": 12}
SIZES = [(40, 50), (30, 70), (64, 24), (33, 33), (90, 60), (5, 400), (480, 640), (1000, 120), (768, 1024)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(checkpoint, fp32 export), built and exported (validated against torch) once."""
    from onnxpipe_export import export

    root = tmp_path_factory.mktemp("pix2struct")
    checkpoint = build_pix2struct_checkpoint(root / "ckpt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export(str(checkpoint), task="image-to-text", output=str(root / "onnx"), dtype="fp32", quiet=True)
    return checkpoint, root / "onnx"


@pytest.fixture(scope="module")
def pair(exported):
    """(onnxpipe pipeline, transformers pipeline) on the same checkpoint."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    checkpoint, folder = exported
    return (
        pipeline("image-to-text", model=str(folder), dtype="fp32"),
        transformers.pipeline("image-to-text", model=str(checkpoint), device="cpu"),
    )


@pytest.fixture(scope="module")
def images():
    return pictures(6)


def test_greedy_equals_transformers_and_depends_on_the_image(pair, images):
    ours, ref = pair
    results = ours(images, **SHORT)
    assert results == ref(images, **SHORT)
    captions = [r[0]["generated_text"] for r in results]
    assert len(set(captions)) == len(images)  # random weights decide: each picture its own caption
    assert ours(images, batch_size=4, **SHORT) == results  # batches: one group (every input is max_patches long)


def test_beam_search_and_default_length_equal_transformers(pair, images):
    ours, ref = pair
    options = {"max_new_tokens": 10, "generate_kwargs": {"num_beams": 3, "num_return_sequences": 2}}
    assert ours(images[:3], **options) == ref(images[:3], **options)
    assert ours(images[0]) == ref(images[0])  # the default 256 new tokens (relative positions: no table bound)


def _compare_processors(config, exact):
    import transformers

    ref = transformers.Pix2StructImageProcessor(**config)
    ours = Pix2StructProcessor.from_config(ref.to_dict())
    for seed, (h, w) in enumerate(SIZES):
        image = Image.fromarray(picture(h, w, seed))
        expected = ref(images=image, return_tensors="np")
        got = ours.preprocess(image)
        np.testing.assert_array_equal(got["attention_mask"], expected["attention_mask"][0])
        if exact:
            np.testing.assert_array_equal(got["flattened_patches"], expected["flattened_patches"][0])
        else:  # shrinking by 2x or more: torch's longer sums round differently now and then
            np.testing.assert_allclose(got["flattened_patches"], expected["flattened_patches"][0], rtol=0, atol=1e-6)


def test_processor_equals_transformers_bit_for_bit_at_the_real_checkpoints_settings():
    _compare_processors({}, exact=True)  # max_patches 2048, 16x16 patches (pix2struct-textcaps-base)


def test_processor_equals_transformers_within_float32_rounding_when_shrinking():
    _compare_processors({"patch_size": {"height": 4, "width": 4}, "max_patches": 24}, exact=False)
    _compare_processors({"max_patches": 64}, exact=False)


def test_export_writes_the_patch_encoder_and_the_task_is_found_from_the_architecture(exported):
    checkpoint, folder = exported
    manifest = json.loads((folder / "onnxpipe.json").read_text())
    encoder, decoder = manifest["files"]["encoder_model.onnx"], manifest["files"]["decoder_model_merged.onnx"]
    assert [i["name"] for i in encoder["inputs"]] == ["flattened_patches", "attention_mask"]
    assert {"encoder_attention_mask", "attention_mask"} <= {i["name"] for i in decoder["inputs"]}
    assert decoder["validation"]["passed"] and decoder["validation"]["greedy_agreement"] == 1.0  # fp32 vs torch
    assert task_from_architectures(["Pix2StructForConditionalGeneration"]) == "image-to-text"


def test_prompt_is_refused(pair, images):
    ours, _ = pair
    with pytest.raises(InvalidOptionError, match="Pix2Struct.*font"):
        ours(images[0], prompt="a photo of")


def test_vqa_checkpoints_are_refused_at_export_and_at_load(exported, tmp_path):
    from onnxpipe_export import export
    from onnxpipe_export.errors import UnsupportedTaskError

    vqa = build_pix2struct_checkpoint(tmp_path / "vqa", is_vqa=True)
    with pytest.raises(UnsupportedTaskError, match="VQA"):
        export(str(vqa), task="image-to-text", output=str(tmp_path / "out"), dtype="fp32", quiet=True)
    _, folder = exported
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "preprocessor_config.json").read_text())
    (copy / "preprocessor_config.json").write_text(json.dumps({**config, "is_vqa": True}))
    with pytest.raises(MissingModelFileError, match="is_vqa"):
        pipeline("image-to-text", model=str(copy), dtype="fp32")


def test_bad_inputs_get_clear_errors(pair):
    ours, _ = pair
    with pytest.raises(InvalidInputError, match="None"):
        ours(None)
    with pytest.raises(InvalidInputError, match="3 pixels"):
        ours(Image.fromarray(picture(3, 40, 0)))
    with pytest.raises(InvalidInputError):
        ours(12)
