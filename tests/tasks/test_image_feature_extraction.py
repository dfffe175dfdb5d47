"""image-feature-extraction at parity with transformers.pipeline on tiny ViT (with pooler), DINOv2 and CLIP vision
tower checkpoints: hidden states and pooled vectors, lists and batches, return_tensors, image_processor_kwargs, and
the errors for bad options and inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from support.vision_checkpoints import picture, sample_images

from onnxpipe.errors import InvalidInputError, InvalidOptionError

ARCHS = ["vit-base", "dinov2", "clip-vision"]


@pytest.fixture(scope="module", params=ARCHS)
def pair(request, vision_models):
    return vision_models.pair(request.param)


def assert_close(ours, theirs, atol: float = 1e-4) -> None:
    a, b = np.asarray(ours, dtype=np.float32), np.asarray(theirs, dtype=np.float32)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol)


def test_hidden_states_and_pooled_vectors_match(pair):
    ours, theirs = pair
    for image in sample_images()[:8]:
        hidden = ours(image)
        assert isinstance(hidden, list) and len(hidden) == 1  # [1][tokens][hidden], as transformers
        assert_close(hidden, theirs(image))
        assert_close(ours(image, pool=True), theirs(image, pool=True))
        assert_close(ours(image, pool=False), theirs(image, pool=False))


def test_outputs_depend_on_the_image(pair):
    ours, _ = pair
    vectors = [np.asarray(ours(image, pool=True))[0] for image in sample_images()[:6]]
    assert min(np.abs(a - b).max() for i, a in enumerate(vectors) for b in vectors[i + 1:]) > 1e-2


def test_lists_batches_and_tensors(pair):
    ours, theirs = pair
    images = sample_images()[:5]
    expected = theirs(images, pool=True)
    for got in (ours(images, pool=True), ours(images, pool=True, batch_size=3)):
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            assert_close(a, b)
    tensor = ours(images[0], return_tensors=True)
    reference = theirs(images[0], return_tensors=True)
    assert isinstance(tensor, np.ndarray) and tensor.dtype == np.float32 and tensor.shape == tuple(reference.shape)
    assert_close(tensor, reference.numpy())


def test_image_processor_kwargs_match_transformers(vision_models):
    ours, theirs = vision_models.pair("dinov2")
    kwargs = {"size": {"shortest_edge": 56}, "crop_size": {"height": 48, "width": 48}}
    image = Image.fromarray(picture(70, 50, seed=3))
    assert_close(ours(image, image_processor_kwargs=kwargs), theirs(image, image_processor_kwargs=kwargs))
    assert np.asarray(ours(image, image_processor_kwargs=kwargs)).shape[1] == 1 + 6 * 6  # nothing sticks:
    assert np.asarray(ours(image)).shape[1] == 1 + 4 * 4


def test_bad_options_and_inputs_are_clear(pair):
    ours, _ = pair
    image = picture(20, 20)
    with pytest.raises(InvalidOptionError, match="pool"):
        ours(image, pool="yes")
    with pytest.raises(InvalidOptionError, match="return_tensors"):
        ours(image, return_tensors=1)
    with pytest.raises(InvalidOptionError, match="image_processor_kwargs"):
        ours(image, image_processor_kwargs={"do_flip": True})
    with pytest.raises(InvalidOptionError, match="image_processor_kwargs must be a dict"):
        ours(image, image_processor_kwargs=[("size", 3)])
    with pytest.raises(InvalidOptionError, match="timeout"):
        ours(image, timeout=-1)
    with pytest.raises(InvalidOptionError, match="does not take"):
        ours(image, top_k=3)
    with pytest.raises(InvalidInputError):
        ours(12)
    with pytest.raises(InvalidInputError, match="1x1"):
        ours(np.zeros((1, 1, 3), np.uint8))


def test_pool_without_a_pooled_output_is_refused(vision_models, tmp_path):
    """A plain optimum export of ViT (no pooler_output) refuses pool=True as transformers does for pooler-less models."""
    import shutil
    import warnings

    import onnx

    from onnxpipe import pipeline

    source = vision_models.get("vit-base").onnx
    folder = tmp_path / "no-pooler"
    shutil.copytree(source, folder)
    for extra in folder.glob("model_*.onnx"):
        extra.unlink()
    (folder / "onnxpipe.json").unlink()
    model = onnx.load(str(folder / "model.onnx"))
    keep = [o for o in model.graph.output if o.name != "pooler_output"]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    onnx.save(model, str(folder / "model.onnx"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = pipeline("image-feature-extraction", model=str(folder))
    assert np.asarray(pipe(picture(20, 20))).shape == (1, 17, 32)
    with pytest.raises(InvalidOptionError, match="pooled output"):
        pipe(picture(20, 20), pool=True)
