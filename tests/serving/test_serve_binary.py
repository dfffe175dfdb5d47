"""Binary answers (issue 18): one image-to-image answer comes back as PNG bytes and one text-to-audio answer as WAV
bytes, as the Hugging Face Inference API answers those tasks, or as base64 in JSON when the client asks with
`Accept: application/json`; an Accept the server cannot give is a 406 saying what it can. Raw image bodies (what
`huggingface_hub.InferenceClient` sends) are inputs. Checked on the pieces (Accept parsing, raw bodies), on the app
with stub pipelines (an echo text-to-audio, an image and a depth-like answer), and on a real `onnxpipe serve` with
an exported Swin2SR and the official client."""

from __future__ import annotations

import asyncio
import base64
import io
import pickle

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
PIL = pytest.importorskip("PIL.Image")

from support.vision_checkpoints import picture  # noqa: E402

from onnxpipe.audio.wav import read_wav  # noqa: E402
from onnxpipe.serving.app import create_app  # noqa: E402
from onnxpipe.serving.config import ModelSpec, ServeConfig  # noqa: E402
from onnxpipe.serving.media import PNG, WAV, EncodedMedia, raw_media_input  # noqa: E402
from onnxpipe.serving.negotiation import choose, parse_accept  # noqa: E402

BOTH = (PNG, "application/json")


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PIL.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# -- the pieces ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("accept", "offers", "chosen"), [
    (None, BOTH, PNG),  # no preference: the file, as the Inference API answers
    ("*/*", BOTH, PNG),
    ("image/png", BOTH, PNG),
    ("image/*", BOTH, PNG),
    ("application/json", BOTH, "application/json"),
    ("application/json, */*", BOTH, "application/json"),  # the more specific range wins a tie
    ("image/png;q=0.5, application/json", BOTH, "application/json"),
    ("*/*;q=0.1, image/png;q=0", BOTH, "application/json"),  # q=0 refuses
    ("image/jpeg", BOTH, None),
    ("audio/x-wav", (WAV, "application/json"), WAV),  # a synonym of audio/wav
    ("audio/wav", ("application/json",), None),
    ("text/html,application/xhtml+xml,*/*;q=0.8", ("application/json",), "application/json"),  # a browser
    ("image/png;q=oops", BOTH, None),
])
def test_accept_header_picks_the_representation(accept, offers, chosen):
    assert choose(accept, offers) == chosen


def test_accept_parsing_keeps_q_and_drops_other_parameters():
    assert parse_accept(" Image/PNG ; level=1 ; q=0.3 ,application/json") == [("image/png", 0.3), ("application/json", 1.0)]
    assert parse_accept("") == [("*/*", 1.0)]


def test_raw_media_bodies_are_inputs_and_json_bodies_are_not():
    png = _png_bytes(picture(8, 8, seed=1))
    assert raw_media_input(png, "application/json") == base64.b64encode(png).decode()  # huggingface_hub's label
    assert raw_media_input(png, None) is not None
    assert raw_media_input(b"anything", "image/jpeg; charset=binary") is not None
    assert raw_media_input(b"anything", "application/octet-stream") is not None
    assert raw_media_input(b'{"inputs": "x"}', "application/json") is None
    assert raw_media_input(b'{"inputs": "x"}', None) is None


def test_encoded_media_is_a_json_string_that_keeps_its_file():
    media = EncodedMedia(b"RIFF....WAVE", WAV)
    assert isinstance(media, str) and media == base64.b64encode(b"RIFF....WAVE").decode()
    back = pickle.loads(pickle.dumps(media))  # Ray hands answers between processes
    assert type(back) is EncodedMedia and back.media_type == WAV and back.data() == b"RIFF....WAVE"


# -- the app, with stub pipelines ----------------------------------------------------------------
RATE = 16000


class EchoSpeech:
    """A text-to-audio stand-in with transformers' output shape: (1, samples) float32 per text."""

    task = "text-to-audio"

    @staticmethod
    def speak(text: str) -> dict:
        t = np.arange(100 * len(text)) / RATE
        return {"audio": (0.5 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32), "sampling_rate": RATE}

    def __call__(self, inputs, **options):
        return self.speak(inputs) if isinstance(inputs, str) else [self.speak(t) for t in inputs]


class Painter:
    """An image-to-image stand-in (a gray picture the size of the input text's length) and a depth-like answer."""

    task = "image-to-image"

    def __call__(self, inputs, *, depth: bool = False, **options):
        def one(text):
            image = PIL.fromarray(np.full((4, len(text)), 7 * len(text) % 256, dtype=np.uint8))
            return {"predicted_depth": np.ones((2, 2), np.float32), "depth": image} if depth else image
        return one(inputs) if isinstance(inputs, str) else [one(t) for t in inputs]


def _run(scenario) -> None:
    app = create_app({"tts": EchoSpeech(), "paint": Painter()},
                     ServeConfig(models=(ModelSpec("tts", "-"), ModelSpec("paint", "-"))))

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            await scenario(client)

    try:
        asyncio.run(main())
    finally:
        app.state.server.close()


def test_text_to_audio_answers_wav_bytes_or_base64_json():
    async def scenario(client):
        for accept in (None, "*/*", "audio/wav", "audio/*"):
            headers = {} if accept is None else {"Accept": accept}
            answer = await client.post("/models/tts", json={"inputs": "hello"}, headers=headers)
            assert answer.status_code == 200 and answer.headers["content-type"] == "audio/wav", accept
            samples, rate = read_wav(answer.content)
            assert rate == RATE
            np.testing.assert_array_equal(samples, EchoSpeech.speak("hello")["audio"][0])
        hf = await client.post("/hf/models/tts", json={"inputs": "hello"})
        assert hf.headers["content-type"] == "audio/wav" and hf.content == answer.content

        as_json = await client.post("/models/tts", json={"inputs": "hello"}, headers={"Accept": "application/json"})
        assert as_json.headers["content-type"] == "application/json" and as_json.headers["vary"] == "Accept"
        body = as_json.json()
        assert body.keys() == {"audio", "sampling_rate"} and body["sampling_rate"] == RATE
        assert base64.b64decode(body["audio"]) == answer.content

        several = await client.post("/models/tts", json={"inputs": ["a", "bcd"]})  # a list: JSON, one WAV each
        assert several.headers["content-type"] == "application/json"
        assert [len(read_wav(base64.b64decode(x["audio"]))[0]) for x in several.json()] == [100, 300]

        refused = await client.post("/models/tts", json={"inputs": "hello"}, headers={"Accept": "audio/flac"})
        assert refused.status_code == 406 and refused.json()["error_type"] == "not_acceptable"
        assert "audio/wav" in refused.json()["error"] and "application/json" in refused.json()["error"]
        listed = await client.post("/models/tts", json={"inputs": ["a", "b"]}, headers={"Accept": "audio/wav"})
        assert listed.status_code == 406 and "JSON only" in listed.json()["error"]

    _run(scenario)


def test_image_answers_png_bytes_and_json_answers_stay_json():
    async def scenario(client):
        png = await client.post("/models/paint", json={"inputs": "abc"})
        assert png.status_code == 200 and png.headers["content-type"] == PNG
        image = PIL.open(io.BytesIO(png.content))
        assert image.size == (3, 4) and np.asarray(image).max() == 21
        as_json = await client.post("/models/paint", json={"inputs": "abc"}, headers={"Accept": "application/json"})
        assert base64.b64decode(as_json.json()) == png.content

        depth = await client.post("/models/paint", json={"inputs": "abc", "parameters": {"depth": True}})
        assert depth.headers["content-type"] == "application/json"  # a dict with an image inside: JSON, as today
        assert PIL.open(io.BytesIO(base64.b64decode(depth.json()["depth"]))).size == (3, 4)
        refused = await client.post("/models/paint", json={"inputs": "abc", "parameters": {"depth": True}},
                                    headers={"Accept": "image/png"})
        assert refused.status_code == 406 and "application/json" in refused.json()["error"]

        metrics = (await client.get("/metrics")).text
        before_any_work = await client.post("/models/paint", json={"inputs": "abc"}, headers={"Accept": "text/html"})
        assert before_any_work.status_code == 406  # refused before the model runs: no pipeline call counted
        assert _calls(metrics) == _calls((await client.get("/metrics")).text) > 0

    _run(scenario)


def _calls(metrics: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("onnxpipe_batch_size_count") and 'model="paint"' in line)


# -- a real server, the official client ----------------------------------------------------------
@pytest.fixture(scope="module")
def swin2sr(vision_models, tmp_path_factory):
    from support.live_server import ServerProcess

    folder = vision_models.get("swin2sr").onnx
    process = ServerProcess({"sr": folder}, tmp_path_factory.mktemp("binary") / "log.txt")
    yield process, folder
    process.stop()


def test_hf_client_image_to_image_gets_the_upscaled_png(swin2sr, online):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    from onnxpipe import pipeline

    process, folder = swin2sr
    image = picture(40, 48, seed=5)
    expected = pipeline("image-to-image", model=str(folder), dtype="fp32")(image)
    for path in ("/models/sr", "/hf/models/sr"):
        client = huggingface_hub.InferenceClient(model=process.url + path, timeout=60)
        got = client.image_to_image(_png_bytes(image))  # raw bytes body, Accept: image/png
        assert got.size == expected.size and got.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def test_accept_variants_on_a_real_server(swin2sr):
    from support.live_server import post

    process, _ = swin2sr
    data = _png_bytes(picture(40, 40, seed=6))
    as_bytes = post(f"{process.url}/models/sr", data, headers={"Content-Type": "image/png"})
    assert as_bytes.status_code == 200 and as_bytes.headers["content-type"] == PNG
    as_json = post(f"{process.url}/models/sr", {"inputs": base64.b64encode(data).decode()},
                   headers={"Accept": "application/json"})
    assert as_json.status_code == 200 and base64.b64decode(as_json.json()) == as_bytes.content
    refused = post(f"{process.url}/models/sr", data, headers={"Accept": "audio/wav"})
    assert refused.status_code == 406 and "image/png" in refused.json()["error"]
