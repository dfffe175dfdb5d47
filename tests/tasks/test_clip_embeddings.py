"""CLIP embeddings for text-to-image search (issue 18): a CLIPModel checkpoint exported for feature-extraction holds
text_model.onnx and vision_model.onnx; feature-extraction gives text_embeds and image-feature-extraction gives
image_embeds, equal to torch's CLIPModel.get_text_features / get_image_features, and ranking images against captions
by cosine gives torch's ranking. Options and bad inputs too."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from support.vision_checkpoints import picture  # noqa: E402

from onnxpipe import pipeline  # noqa: E402
from onnxpipe.errors import InvalidInputError, InvalidOptionError, MissingModelFileError  # noqa: E402

ATOL = 1e-4  # fp32 parity (DESIGN.md), relative to the vectors' scale
CAPTIONS = ["a red square on grass", "two dogs", "a small blue boat at sea under a cloudy sky", "night"]


@pytest.fixture(scope="module")
def clip(vision_models, tmp_path_factory):
    """(checkpoint, embedding folder): the tiny CLIP of vision_checkpoints.py (shared with zero-shot image
    classification), exported once more for feature-extraction."""
    from onnxpipe_export import export

    checkpoint = vision_models.get("clip").checkpoint
    folder = tmp_path_factory.mktemp("clip-embeddings") / "onnx"
    export(str(checkpoint), "feature-extraction", str(folder), quiet=True)
    return checkpoint, folder


@pytest.fixture(scope="module")
def images():
    """Black, white, red and a generated picture: the tiny random tower ranks the captions differently for them
    (four generated pictures all get one ranking)."""
    solid = [np.full((40, 48, 3), colour, dtype=np.uint8) for colour in ((0, 0, 0), (255, 255, 255), (255, 0, 0))]
    return [*solid, picture(48, 40, seed=21)]


@pytest.fixture(scope="module")
def torch_features(clip, images):
    """CLIPModel.get_text_features / get_image_features on the same inputs: the reference."""
    from PIL import Image

    checkpoint, _ = clip
    model = transformers.CLIPModel.from_pretrained(str(checkpoint)).eval()
    processor = transformers.CLIPImageProcessor.from_pretrained(str(checkpoint))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    text = tokenizer(CAPTIONS, padding=True, return_tensors="pt")
    pixels = processor(images=[Image.fromarray(i) for i in images], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return model.get_text_features(**text).numpy(), model.get_image_features(pixel_values=pixels).numpy()


def _cosines(image_vectors: np.ndarray, text_vectors: np.ndarray) -> np.ndarray:
    a = image_vectors / np.linalg.norm(image_vectors, axis=1, keepdims=True)
    b = text_vectors / np.linalg.norm(text_vectors, axis=1, keepdims=True)
    return a @ b.T


def _ranking(image_vectors: np.ndarray, text_vectors: np.ndarray) -> np.ndarray:
    """Each image's captions, best first (what a text-to-image search sorts by)."""
    return np.argsort(-_cosines(image_vectors, text_vectors), axis=1, kind="stable")


def test_folder_holds_both_towers(clip):
    _, folder = clip
    assert (folder / "text_model.onnx").is_file() and (folder / "vision_model.onnx").is_file()
    text, vision = pipeline("feature-extraction", model=str(folder)), pipeline("image-feature-extraction", model=str(folder))
    assert text.model_path.name == "text_model.onnx" and vision.model_path.name == "vision_model.onnx"
    assert pipeline(model=str(folder)).task == "feature-extraction"  # the recorded task


def test_vectors_and_ranking_match_torch(clip, images, torch_features):
    _, folder = clip
    want_text, want_image = torch_features
    text = pipeline("feature-extraction", model=str(folder))
    vision = pipeline("image-feature-extraction", model=str(folder))
    got_text = np.array([row[0] for row in text(CAPTIONS, batch_size=4)])  # transformers' [1][dim] per input
    got_image = np.array([row[0] for row in vision(images, batch_size=2)])
    for got, want in ((got_text, want_text), (got_image, want_image)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=ATOL * max(1.0, np.abs(want).max()))
    ranking = _ranking(got_image, got_text)
    np.testing.assert_array_equal(ranking, _ranking(want_image, want_text))
    np.testing.assert_array_equal(_ranking(got_text, got_image), _ranking(want_text, want_image))  # images per caption
    assert len({tuple(r) for r in ranking}) > 1, "random weights must decide the ranking (EXPORT_NOTES)"
    scores = np.sort(_cosines(want_image, want_text), axis=1)
    assert np.diff(scores, axis=1).min() > 1e-3, "no near tie: the ranking is decided, not a coin flip"
    # one text or image at a time gives the same vectors as the padded batch
    np.testing.assert_allclose(text.encode(CAPTIONS[2]), got_text[2], atol=1e-5)
    np.testing.assert_allclose(vision.encode(images[1]), got_image[1], atol=1e-5)


def test_options(clip, images):
    _, folder = clip
    text = pipeline("feature-extraction", model=str(folder))
    vision = pipeline("image-feature-extraction", model=str(folder))
    unit = text(CAPTIONS[0], pooling="folder", normalize=True)
    assert isinstance(unit, list) and isinstance(unit[0], float) and abs(np.linalg.norm(unit) - 1) < 1e-5
    tensor = vision(images[0], normalize=True, return_tensors=True)
    assert tensor.shape == (1, 16) and tensor.dtype == np.float32 and abs(np.linalg.norm(tensor) - 1) < 1e-5
    assert text.encode(CAPTIONS).shape == (4, 16) and vision.encode(images, normalize_embeddings=True).shape == (4, 16)
    with pytest.raises(InvalidOptionError, match="text_embeds"):
        text("x", pooling="mean")
    with pytest.raises(InvalidOptionError, match="pool"):
        vision(images[0], pool=True)  # transformers: "No pooled output" for CLIPVisionModelWithProjection
    with pytest.raises(InvalidOptionError, match="normalize"):
        vision(images[0], normalize="yes")
    with pytest.raises(InvalidInputError, match="string"):
        text(3)


def test_folders_without_the_towers_and_other_dtypes_are_refused(clip, vision_models, tmp_path):
    from onnxpipe_export import export
    from onnxpipe_export.errors import UnsupportedTaskError

    zero_shot = vision_models.get("clip").onnx  # a CLIPModel export for zero-shot classification: model.onnx only
    with pytest.raises(MissingModelFileError, match="--task image-feature-extraction"):
        pipeline("image-feature-extraction", model=str(zero_shot))
    with pytest.raises(UnsupportedTaskError, match="fp32"):
        export(str(clip[0]), "image-feature-extraction", str(tmp_path / "out"), dtype="int8", quiet=True)
