"""onnxpipe.limits: the checks name the value, the limit and the flag; pipeline(..., limits=...) opts in, and each
check runs before the work it guards allocates anything (beams, resampling)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from support import audio_checkpoints as ac

from onnxpipe import Limits, pipeline
from onnxpipe.audio.inputs import load_audio
from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.limits import FLAGS

SERVER = Limits()


@pytest.mark.parametrize("check, error, needles", [
    (lambda: SERVER.check_generation(10**9, 1, 4), InvalidOptionError, ["num_beams=1000000000", "8", "--max-num-beams"]),
    (lambda: SERVER.check_generation(1, 9, 4), InvalidOptionError, ["num_return_sequences=9", "--max-num-return-sequences"]),
    (lambda: SERVER.check_generation(1, 1, 10**9), InvalidOptionError, ["max_new_tokens=1000000000", "1024", "--max-new-tokens"]),
    (lambda: SERVER.check_generation(1, 1, None, 10**9, 1024), InvalidOptionError, ["max_length=1000000000", "--max-new-tokens"]),
    (lambda: SERVER.check_inputs(2049), InvalidInputError, ["2049", "2048", "--max-inputs-per-request"]),
    (lambda: SERVER.check_audio(1000, 2147483648), InvalidInputError, ["2147483648", "--max-sample-rate"]),
    (lambda: SERVER.check_audio(16000, 1), InvalidInputError, ["sampling_rate=1 Hz", "1000 Hz", "--min-sample-rate"]),
    (lambda: SERVER.check_audio(16000 * 601, 16000), InvalidInputError, ["601 s", "600 s", "--max-audio-seconds"]),
    (lambda: SERVER.check_image(10_000, 10_000), InvalidInputError, ["10000x10000", "--max-image-pixels"]),
    (lambda: Limits(max_input_tokens=8).check_input_tokens(9), InvalidInputError, ["9", "8", "--max-input-tokens"]),
])
def test_each_check_names_the_value_the_limit_and_the_flag(check, error, needles):
    with pytest.raises(error) as info:
        check()
    for needle in needles:
        assert needle in str(info.value)


def test_values_within_the_limits_pass_and_unlimited_passes_everything():
    SERVER.check_generation(8, 8, 1024)
    SERVER.check_generation(4, 1, None, 1500, 1024)  # max_length may cover the prompt too
    SERVER.check_inputs(2048)
    SERVER.check_audio(16000 * 600, 16000)
    free = Limits.unlimited()
    free.check_generation(10**9, 10**9, 10**9, 10**9)
    free.check_inputs(10**9)
    free.check_audio(10**12, 1)
    free.check_image(10**6, 10**6)
    assert all(value is None for value in free.as_dict().values())


def test_defaults_bad_values_and_from_dict():
    assert (SERVER.max_num_beams, SERVER.max_num_return_sequences, SERVER.max_new_tokens) == (8, 8, 1024)
    assert (SERVER.max_audio_seconds, SERVER.min_sample_rate, SERVER.max_sample_rate) == (600, 1000, 384_000)
    assert SERVER.max_input_tokens is None and SERVER.max_inputs_per_request == 2048
    assert set(FLAGS) == set(SERVER.as_dict())
    for bad in ({"max_num_beams": 0}, {"max_new_tokens": 1.5}, {"max_audio_seconds": float("nan")},
                {"min_sample_rate": 8000, "max_sample_rate": 4000}, {"max_num_beams": True}):
        with pytest.raises(ValueError):
            Limits(**bad)
    assert Limits.from_dict({"max_num_beams": 2, "max_new_tokens": None}).as_dict() == {
        **SERVER.as_dict(), "max_num_beams": 2, "max_new_tokens": None}
    with pytest.raises(ValueError, match="max_beams"):
        Limits.from_dict({"max_beams": 2})


# -- audio: the rate and length are checked before resampling --------------------------------------------
def _peak_mb(call) -> float:
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInputError) as info:
            call()
        return tracemalloc.get_traced_memory()[1] / 2**20, str(info.value)
    finally:
        tracemalloc.stop()


def test_a_huge_dict_rate_is_refused_before_resampling():
    item = {"raw": np.zeros(1000, np.float32), "sampling_rate": 2147483648}
    peak, message = _peak_mb(lambda: load_audio(item, 16000, limits=SERVER))
    assert "--max-sample-rate" in message and peak < 20


def test_a_wav_claiming_1_hz_is_refused_before_resampling():
    data = ac.wav_bytes(ac.noise(1.0, seed=0), rate=1)  # 32 KB: 16,000 samples said to last 4.4 hours
    assert len(data) < 40_000
    peak, message = _peak_mb(lambda: load_audio(data, 16000, limits=SERVER))
    assert "--min-sample-rate" in message and peak < 20
    peak, message = _peak_mb(lambda: load_audio(data, 16000, limits=Limits(min_sample_rate=None)))
    assert "--max-audio-seconds" in message and peak < 20


def test_audio_within_the_limits_and_the_library_default_are_unchanged():
    clip = ac.tone(0.5, 440.0, rate=8000)
    want = load_audio({"raw": clip, "sampling_rate": 8000}, 16000)
    assert np.array_equal(load_audio({"raw": clip, "sampling_rate": 8000}, 16000, limits=SERVER), want)
    assert load_audio(ac.wav_bytes(clip, rate=8000), 16000, limits=SERVER).shape == want.shape
    assert load_audio({"raw": np.zeros(10, np.float32), "sampling_rate": 500}, 1000).shape == (20,)  # no limit by default
    with pytest.raises(InvalidInputError, match="max-audio-seconds"):
        load_audio(np.zeros(16000 * 3, np.float32), 16000, limits=Limits(max_audio_seconds=2))


# -- pipelines opt in -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier(models):
    return str(models.get("bert", "text-classification").onnx)


def test_inputs_per_call_limit_is_opt_in(classifier):
    texts = ["one", "two", "three"]
    assert len(pipeline("text-classification", model=classifier, dtype="fp32")(texts)) == 3
    limited = pipeline("text-classification", model=classifier, dtype="fp32", limits=Limits(max_inputs_per_request=2))
    assert len(limited(texts[:2])) == 2
    with pytest.raises(InvalidInputError, match="max-inputs-per-request"):
        limited(texts)
    with pytest.raises(InvalidOptionError, match="limits must be"):
        pipeline("text-classification", model=classifier, dtype="fp32", limits={"max_num_beams": 2})


@pytest.fixture(scope="module")
def gpt2(generation_models):
    return str(generation_models.get("gpt2").onnx)


@pytest.mark.parametrize("options, needle", [
    ({"num_beams": 10**9, "max_new_tokens": 4}, "--max-num-beams"),
    ({"do_sample": True, "num_return_sequences": 10**9, "max_new_tokens": 4}, "--max-num-return-sequences"),
    ({"max_new_tokens": 10**9}, "--max-new-tokens"),
])
def test_generation_limits_refuse_before_allocating(gpt2, options, needle):
    limited = pipeline("text-generation", model=gpt2, dtype="fp32", limits=Limits())
    tracemalloc.start()
    try:
        with pytest.raises(InvalidOptionError, match=needle):
            limited("Hello", **options)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert peak < 20


def test_generation_without_limits_is_unchanged_and_prompt_tokens_are_limited(gpt2):
    free = pipeline("text-generation", model=gpt2, dtype="fp32")
    assert len(free("Hello", num_beams=9, num_return_sequences=9, max_new_tokens=2, do_sample=False)) == 9
    limited = pipeline("text-generation", model=gpt2, dtype="fp32", limits=Limits(max_input_tokens=4))
    limited("Hi", max_new_tokens=2, do_sample=False)
    with pytest.raises(InvalidInputError, match="--max-input-tokens"):
        limited("the weather today is nice and the sky is blue", max_new_tokens=2, do_sample=False)


@pytest.fixture(scope="module")
def audio_classifier(models):
    return str(models._once("audio-wav2vec2-classifier", "audio-classification", ac.build_classifier).onnx)


def test_audio_pipeline_limits(audio_classifier):
    limited = pipeline("audio-classification", model=audio_classifier, dtype="fp32", limits=Limits())
    with pytest.raises(InvalidInputError, match="--max-sample-rate"):
        limited({"raw": np.zeros(1000, np.float32), "sampling_rate": 2147483648})
    with pytest.raises(InvalidInputError, match="--min-sample-rate"):
        limited(ac.wav_bytes(ac.noise(1.0, seed=0), rate=1))
    assert limited(ac.wav_bytes(ac.tone(0.5, 440.0), rate=16000))


def test_image_pixels_are_checked_from_the_header_before_decoding(monkeypatch):
    import io

    import PIL.Image

    from onnxpipe.vision import images

    buffer = io.BytesIO()
    PIL.Image.new("RGB", (300, 200)).save(buffer, format="PNG")
    data = buffer.getvalue()
    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(InvalidInputError, match="300x200.*--max-image-pixels"):
        images.load_image(data, limits=Limits(max_image_pixels=50_000))
    monkeypatch.undo()
    assert images.load_image(data, limits=Limits()).size == (300, 200)
    with pytest.raises(InvalidInputError, match="--max-image-pixels"):
        images.load_image(np.zeros((200, 300, 3), np.uint8), limits=Limits(max_image_pixels=50_000))
