"""zero-shot-image-classification at parity with transformers.pipeline on a tiny CLIP checkpoint."""

from __future__ import annotations

import pytest
from support.parity import assert_same
from support.vision_checkpoints import picture, sample_images

from onnxpipe.errors import InvalidOptionError

LABELS = ["cat", "dog", "a red car", "snow on a mountain"]
# int8 (dynamic, per-channel, SmoothQuant) on this tiny random CLIP: largest score difference to fp32
# measured over sample_images() was 0.012
INT8_SCORE_ATOL = 0.1


@pytest.fixture(scope="module")
def pair(vision_models):
    return vision_models.pair("clip")


def test_outputs_depend_on_the_image(pair):
    ours, _ = pair
    assert len({ours(image, candidate_labels=LABELS)[0]["label"] for image in sample_images()}) >= 2


def test_parity_on_every_sample_image(pair):
    ours, theirs = pair
    for image in sample_images():
        assert_same(ours(image, candidate_labels=LABELS), theirs(image, candidate_labels=LABELS))


@pytest.mark.parametrize(
    "options",
    [{"candidate_labels": ["cat"]}, {"candidate_labels": ["a", "b", "c d e f g", "dog", "the sea at night"]},
     {"candidate_labels": LABELS, "hypothesis_template": "{} in a picture"}],
)
def test_options_match(pair, options):
    ours, theirs = pair
    image = sample_images()[1]
    assert_same(ours(image, **options), theirs(image, **options))


def test_lists_and_batches(pair):
    ours, theirs = pair
    images = sample_images()[:6]
    expected = theirs(images, candidate_labels=LABELS)
    assert_same(ours(images, candidate_labels=LABELS), expected)
    assert_same(ours(images, candidate_labels=LABELS, batch_size=4), expected)


def test_pipeline_defaults_apply_and_calls_override(vision_models):
    from onnxpipe import pipeline

    folder = str(vision_models.get("clip").onnx)
    ours = pipeline("zero-shot-image-classification", model=folder, candidate_labels=LABELS)
    image = sample_images()[0]
    assert [r["label"] for r in ours(image)] == [r["label"] for r in ours(image, candidate_labels=LABELS)]
    assert len(ours(image, candidate_labels=["x", "y"])) == 2
    assert len(ours(image)) == len(LABELS)  # the call's labels did not stick


def test_int8_stays_close(vision_models):
    ours, theirs = vision_models.pair("clip", dtype="int8")
    worst = 0.0
    for image in sample_images():
        mine = {r["label"]: r["score"] for r in ours(image, candidate_labels=LABELS)}
        worst = max(worst, *(abs(mine[r["label"]] - r["score"]) for r in theirs(image, candidate_labels=LABELS)))
    assert worst < INT8_SCORE_ATOL, worst


def test_bad_options(pair):
    ours, _ = pair
    image = picture(20, 20)
    with pytest.raises(InvalidOptionError, match="needs candidate_labels"):
        ours(image)
    with pytest.raises(InvalidOptionError, match="list of strings"):
        ours(image, candidate_labels="cat,dog")
    with pytest.raises(InvalidOptionError, match="list of strings"):
        ours(image, candidate_labels=[])
    with pytest.raises(InvalidOptionError, match="hypothesis_template"):
        ours(image, candidate_labels=LABELS, hypothesis_template="no slot")


def test_siglip_is_refused_clearly(vision_models, tmp_path):
    import json
    import shutil

    from onnxpipe import pipeline

    folder = tmp_path / "siglip"
    shutil.copytree(vision_models.get("clip").onnx, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "siglip"}))
    with pytest.raises(InvalidOptionError, match="SigLIP"):
        pipeline("zero-shot-image-classification", model=str(folder))


def test_task_inferred_from_config_without_manifest(vision_models, tmp_path):
    import shutil

    from onnxpipe import pipeline

    folder = tmp_path / "plain"
    shutil.copytree(vision_models.get("clip").onnx, folder)
    (folder / "onnxpipe.json").unlink()
    assert pipeline(model=str(folder), dtype="fp32").task == "zero-shot-image-classification"
