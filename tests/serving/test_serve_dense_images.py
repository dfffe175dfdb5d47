"""Image answers over a real `onnxpipe serve`: depth-estimation, image-to-image and image-segmentation answers carry
their PIL images as base64 PNG strings (numpy arrays as nested lists), equal to direct pipeline calls. One
image-to-image answer is JSON when asked for with `Accept: application/json` (PNG bytes otherwise:
test_serve_binary.py)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

pytest.importorskip("httpx")
PIL = pytest.importorskip("PIL.Image")

from support.live_server import ServerProcess, post  # noqa: E402
from support.vision_checkpoints import picture  # noqa: E402

from onnxpipe import pipeline  # noqa: E402


def _png(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    PIL.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _image(text: str):
    return PIL.open(io.BytesIO(base64.b64decode(text)))


@pytest.fixture(scope="module")
def server(vision_models, tmp_path_factory):
    folders = {name: vision_models.get(arch).onnx for name, arch in
               (("depth", "glpn"), ("sr", "swin2sr"), ("seg", "segformer"))}
    process = ServerProcess(folders, tmp_path_factory.mktemp("serve") / "log.txt")
    yield process, folders
    process.stop()


def test_images_come_back_as_base64_png(server):
    process, folders = server
    image = picture(48, 64, seed=4)
    data = _png(image)

    depth = post(f"{process.url}/models/depth", {"inputs": data})
    assert depth.status_code == 200, depth.text
    direct = pipeline("depth-estimation", model=str(folders["depth"]), dtype="fp32")(image)
    np.testing.assert_allclose(np.asarray(depth.json()["predicted_depth"]), direct["predicted_depth"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(_image(depth.json()["depth"])), np.asarray(direct["depth"]))

    upscaled = post(f"{process.url}/models/sr", {"inputs": data}, headers={"Accept": "application/json"})
    assert upscaled.status_code == 200, upscaled.text
    expected = pipeline("image-to-image", model=str(folders["sr"]), dtype="fp32")(image)
    got = _image(upscaled.json())
    assert got.mode == "RGB" and got.size == expected.size
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))

    segments = post(f"{process.url}/models/seg", {"inputs": data})
    assert segments.status_code == 200, segments.text
    reference = pipeline("image-segmentation", model=str(folders["seg"]), dtype="fp32")(image)
    assert [s["label"] for s in segments.json()] == [s["label"] for s in reference]
    for answer, segment in zip(segments.json(), reference):
        np.testing.assert_array_equal(np.asarray(_image(answer["mask"])), np.asarray(segment["mask"]))


def test_a_batch_of_images_is_answered_per_image(server):
    process, _ = server
    images = [_png(picture(40, 40, seed)) for seed in range(3)]
    answer = post(f"{process.url}/models/sr", {"inputs": images})
    assert answer.status_code == 200, answer.text
    assert [_image(text).size for text in answer.json()] == [(96, 96)] * 3
