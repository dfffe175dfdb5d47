"""image-classification at parity with transformers.pipeline on tiny ViT and ConvNeXt checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from support.parity import assert_same
from support.vision_checkpoints import picture, sample_images

from onnxpipe.errors import InvalidInputError, InvalidOptionError

ARCHS = ["vit", "convnext"]
# int8 (dynamic, per-channel, SmoothQuant) on these tiny random models: the largest score difference to fp32
# measured over sample_images() was 0.017 (ViT) and 0.015 (ConvNeXt), top-1 label always kept
INT8_SCORE_ATOL = 0.06


@pytest.fixture(scope="module", params=ARCHS)
def pair(request, vision_models):
    return vision_models.pair(request.param)


def test_outputs_depend_on_the_image(pair):
    ours, _ = pair
    labels = {ours(image, top_k=1)[0]["label"] for image in sample_images()}
    assert len(labels) >= 2


def test_parity_on_every_sample_image(pair):
    ours, theirs = pair
    for image in sample_images():
        assert_same(ours(image), theirs(image))


@pytest.mark.parametrize(
    "options",
    [{"top_k": 1}, {"top_k": 2}, {"top_k": 50}, {"top_k": None}, {"function_to_apply": "sigmoid", "top_k": 3},
     {"function_to_apply": "none"}, {"function_to_apply": "SOFTMAX"}],
)
def test_options_match(pair, options):
    ours, theirs = pair
    image = sample_images()[0]
    assert_same(ours(image, **options), theirs(image, **options))


def test_lists_and_batches_keep_input_order(pair):
    ours, theirs = pair
    images = sample_images()[:6]
    expected = theirs(images)
    assert_same(ours(images), expected)
    assert_same(ours(images, batch_size=4), expected)
    assert_same(ours([np.asarray(im) for im in images], batch_size=3), expected)


def test_int8_stays_close(vision_models):
    for arch in ARCHS:
        ours, theirs = vision_models.pair(arch, dtype="int8")
        worst = 0.0
        for image in sample_images():
            mine = {r["label"]: r["score"] for r in ours(image, top_k=None)}
            for r in theirs(image, top_k=None):
                worst = max(worst, abs(mine[r["label"]] - r["score"]))
        assert worst < INT8_SCORE_ATOL, (arch, worst)


def test_export_records_vision_settings(vision_models):
    import json

    manifest = json.loads((vision_models.get("vit").onnx / "onnxpipe.json").read_text())
    assert "preprocessor_config.json" in manifest["support_files"]
    assert "generated images" in manifest["validation"]["inputs"]
    assert manifest["optimization"]["fusion"] is True and manifest["optimization"]["ort_model_type"] == "vit"
    assert manifest["files"]["model_quantized.onnx"]["validation"]["top1_agreement"] == 1.0


def test_task_inferred_from_config(vision_models, tmp_path):
    import shutil

    from onnxpipe import pipeline

    folder = vision_models.get("vit").onnx
    assert pipeline(model=str(folder)).task == "image-classification"  # from the manifest
    plain = tmp_path / "plain"
    shutil.copytree(folder, plain)
    (plain / "onnxpipe.json").unlink()
    assert pipeline(model=str(plain), dtype="fp32").task == "image-classification"  # from config.json


def test_bad_options_and_inputs(pair):
    ours, _ = pair
    with pytest.raises(InvalidOptionError, match="top_k"):
        ours(picture(8, 8), top_k=0)
    with pytest.raises(InvalidOptionError, match="function_to_apply"):
        ours(picture(8, 8), function_to_apply="relu")
    with pytest.raises(InvalidOptionError, match="does not take"):
        ours(picture(8, 8), candidate_labels=["a"])
    with pytest.raises(InvalidInputError, match="1x1"):
        ours(Image.new("RGB", (1, 1)))
    with pytest.raises(InvalidInputError, match="empty list"):
        ours([])


ISOLATED = r"""
import json, sys
for name in ("torch", "transformers", "optimum", "onnxpipe_export"):
    sys.modules[name] = None  # any import of them now raises ImportError
import numpy as np
from onnxpipe import pipeline
classify = pipeline("image-classification", model=sys.argv[1])
result = classify(np.full((20, 30, 3), 90, dtype=np.uint8))
print(json.dumps({"n": len(result), "loaded": [n for n in ("torch", "transformers") if sys.modules.get(n)]}))
"""


def test_runs_without_torch_or_transformers(vision_models):
    import json
    import subprocess
    import sys

    folder = vision_models.get("vit").onnx
    out = subprocess.run([sys.executable, "-c", ISOLATED, str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"n": 5, "loaded": []}


def test_missing_preprocessor_config_is_named(vision_models, tmp_path):
    import shutil

    from onnxpipe import pipeline
    from onnxpipe.errors import MissingModelFileError

    folder = tmp_path / "vit"
    shutil.copytree(vision_models.get("vit").onnx, folder)
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(MissingModelFileError, match="preprocessor_config.json"):
        pipeline("image-classification", model=str(folder))


def test_best_indices_order_ties_as_transformers_stable_sort():
    from onnxpipe.tasks.text_base import best_indices

    scores = np.array([0.1, 0.3, 0.3, 0.05, 0.3, 0.25], dtype=np.float32)
    dicts = [{"i": i, "score": float(s)} for i, s in enumerate(scores)]
    dicts.sort(key=lambda d: d["score"], reverse=True)  # transformers' way
    for k in (1, 3, 4, 6, 10):
        assert best_indices(scores, k) == [d["i"] for d in dicts[:k]]
    assert best_indices(scores, 3) == [1, 2, 4]


def test_best_indices_over_a_vocabulary_keep_every_tie_of_the_cut():
    from onnxpipe.tasks.text_base import best_indices

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 50, 30000).astype(np.float32)  # many ties everywhere, including at the k-th score
    for k in (1, 5, 17):
        assert best_indices(scores, k) == np.argsort(-scores, kind="stable")[:k].tolist()
    assert best_indices(scores, 0) == []
