"""A served image model must not read the server's files or fetch URLs for a client unless told to:
by default request strings must be inline (base64) images; --allow-media-files / --allow-media-urls open them."""

from __future__ import annotations

import base64
import io
import os

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
PIL = pytest.importorskip("PIL.Image")

from starlette.testclient import TestClient  # noqa: E402
from support.parity import assert_same  # noqa: E402

from onnxpipe import pipeline  # noqa: E402
from onnxpipe.errors import InvalidInputError  # noqa: E402
from onnxpipe.media_sources import MediaSources  # noqa: E402
from onnxpipe.serving.app import create_app  # noqa: E402
from onnxpipe.serving.command import build_parser  # noqa: E402
from onnxpipe.serving.config import ServeConfig  # noqa: E402
from onnxpipe.serving.server import load_pipelines  # noqa: E402
from onnxpipe.vision.images import load_image  # noqa: E402


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PIL.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def vit(vision_models):
    return vision_models.get("vit").onnx


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("media") / "picture.png"
    path.write_bytes(_png(3))
    return path


def _client(folder, **flags) -> TestClient:
    config = ServeConfig.from_specs([f"vit={folder}"], **flags)
    return TestClient(create_app(load_pipelines(config), config))


def test_base64_images_are_served_and_match_direct_calls(vit):
    data = _png(5)
    direct = pipeline("image-classification", model=str(vit), dtype="fp32")(data)
    with _client(vit, dtype="fp32") as client:
        answer = client.post("/models/vit", json={"inputs": base64.b64encode(data).decode()})
        assert answer.status_code == 200, answer.text
        assert_same(answer.json(), direct, 1e-5)


@pytest.mark.parametrize("path", ["picture", "/etc/passwd", "/no/such/file.png"])
def test_file_paths_are_refused_by_default_without_telling_whether_they_exist(vit, picture, path):
    target = str(picture) if path == "picture" else path
    with _client(vit) as client:
        answer = client.post("/models/vit", json={"inputs": target})
        assert answer.status_code == 422
        message = answer.json()["error"]
        assert "--allow-media-files" in message and "base64" in message
        # the same words whether the file exists or not: no way to probe the server's disk
        assert message.replace(target[:200], "X") == _refusal(vit, "/no/such/file.png")


def _refusal(folder, path: str) -> str:
    with _client(folder) as client:
        return client.post("/models/vit", json={"inputs": path}).json()["error"].replace(path, "X")


def test_urls_are_refused_by_default_before_any_fetch(vit, monkeypatch):
    import urllib.request

    def no_fetch(*args, **kwargs):
        raise AssertionError("the server tried to fetch a URL")

    monkeypatch.setattr(urllib.request, "urlopen", no_fetch)
    with _client(vit) as client:
        answer = client.post("/models/vit", json={"inputs": "http://169.254.169.254/latest/meta-data"})
        assert answer.status_code == 422 and "--allow-media-urls" in answer.json()["error"]


def test_allow_media_files_opens_paths(vit, picture):
    direct = pipeline("image-classification", model=str(vit), dtype="fp32")(str(picture))
    with _client(vit, dtype="fp32", allow_media_files=True) as client:
        answer = client.post("/models/vit", json={"inputs": str(picture)})
        assert answer.status_code == 200, answer.text
        assert_same(answer.json(), direct, 1e-5)
        info = client.get("/info").json()["server"]
        assert info["allow_media_files"] is True and info["allow_media_urls"] is False


def test_inline_only_never_looks_at_the_disk(monkeypatch, picture):
    def no_disk(path):
        raise AssertionError(f"looked up {path!r} on disk")

    monkeypatch.setattr(os.path, "isfile", no_disk)
    with pytest.raises(InvalidInputError, match="file paths are turned off"):
        load_image(str(picture), sources=MediaSources.inline_only())
    image = load_image(base64.b64encode(_png(1)).decode(), sources=MediaSources.inline_only())
    assert image.size == (56, 40)


def test_direct_pipelines_still_take_paths_and_check_the_argument(vit, picture):
    pipe = pipeline("image-classification", model=str(vit), dtype="fp32")
    assert pipe.media_sources == MediaSources()
    assert pipe(str(picture))[0]["label"]
    with pytest.raises(Exception, match="media_sources must be"):
        pipeline("image-classification", model=str(vit), media_sources={"files": False})


def test_cli_flags_reach_the_config():
    args = build_parser().parse_args(["--model", "x", "--allow-media-urls"])
    assert args.allow_media_urls is True and args.allow_media_files is False
    assert ServeConfig.from_specs(["x"]).media_sources == MediaSources.inline_only()


def test_ray_build_app_flags_parse():
    pytest.importorskip("ray")
    from onnxpipe.serving.ray_app import _flag

    assert _flag("allow_media_files", "true") is True and _flag("allow_media_files", "0") is False
    with pytest.raises(ValueError, match="allow_media_urls must be true or false"):
        _flag("allow_media_urls", "maybe")
