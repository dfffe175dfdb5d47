"""text-to-audio / text-to-speech at parity with transformers.pipeline on tiny VITS and SpeechT5 (+ HiFi-GAN)
checkpoints with their noise off (VITS noise scales 0, SpeechT5 prenet dropout 0); the seeded noise, every option,
bad inputs, the tokenizers, and `onnxpipe run --output` writing WAV files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from support import text_to_audio_checkpoints as tta

import onnxpipe
from onnxpipe import cli
from onnxpipe.audio.wav import read_wav
from onnxpipe.errors import InvalidInputError, InvalidOptionError, OnnxpipeError
from onnxpipe.model_folder import ModelFolder
from onnxpipe.tasks.text_to_audio import TextToAudioPipeline
from onnxpipe.text.vits_tokenizer import VitsTokenizer

TEXTS = ["hello world", "Hi there, it's me!", "a", "The quick brown fox jumps."]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Tiny checkpoints built and exported once for this module."""
    from onnxpipe_export import export

    root = tmp_path_factory.mktemp("tta")
    vits = tta.build_vits(root / "vits")
    speecht5 = tta.build_speecht5(root / "speecht5")
    hifigan = tta.build_hifigan(root / "hifigan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export(vits, "text-to-audio", root / "vits_onnx", quiet=True)
        export(speecht5, "text-to-speech", root / "speecht5_onnx", vocoder=str(hifigan), quiet=True)
    return {"vits": vits, "speecht5": speecht5, "hifigan": hifigan,
            "vits_onnx": root / "vits_onnx", "speecht5_onnx": root / "speecht5_onnx"}


@pytest.fixture(scope="module")
def vits(folders):
    from transformers import pipeline

    return onnxpipe.pipeline("text-to-audio", folders["vits_onnx"]), pipeline("text-to-audio", model=str(folders["vits"]))


@pytest.fixture(scope="module")
def speecht5(folders):
    from transformers import SpeechT5HifiGan, pipeline

    vocoder = SpeechT5HifiGan.from_pretrained(str(folders["hifigan"]))
    return (onnxpipe.pipeline("text-to-speech", folders["speecht5_onnx"]),
            pipeline("text-to-speech", model=str(folders["speecht5"]), vocoder=vocoder))


def assert_same_audio(ours: dict, theirs: dict) -> None:
    assert set(ours) == {"audio", "sampling_rate"}
    assert ours["sampling_rate"] == theirs["sampling_rate"] and isinstance(ours["sampling_rate"], int)
    assert ours["audio"].dtype == np.float32 and ours["audio"].shape == theirs["audio"].shape
    np.testing.assert_allclose(ours["audio"], theirs["audio"], atol=1e-5 * max(1.0, np.abs(theirs["audio"]).max()))


# -- VITS ---------------------------------------------------------------------------------------------------------
def test_vits_parity(vits):
    ours, theirs = vits
    for text in TEXTS:
        got = ours(text)
        assert got["audio"].ndim == 2 and got["audio"].shape[0] == 1  # VitsModel's (batch, samples)
        assert_same_audio(got, theirs(text))
    listed = ours(TEXTS[:2], batch_size=2)
    assert [r["audio"].shape for r in listed] == [ours(t)["audio"].shape for t in TEXTS[:2]]


def test_vits_audio_depends_on_the_text(vits):
    ours, _ = vits
    a, b = ours("hello world")["audio"], ours("jello world")["audio"]
    assert a.shape != b.shape or not np.allclose(a, b)  # one letter changes durations or samples
    assert ours("hello world")["audio"].shape != ours("hi")["audio"].shape


def test_vits_seeded_noise(vits):
    ours, theirs = vits
    noisy = {"noise_scale": 0.667, "noise_scale_duration": 0.8}
    first = ours("hello world", seed=3, **noisy)["audio"]
    assert np.array_equal(first, ours("hello world", seed=3, **noisy)["audio"])
    other = ours("hello world", seed=4, **noisy)["audio"]
    assert first.shape != other.shape or not np.allclose(first, other)
    listed = ours(["a", "hello world"], seed=3, **noisy)
    np.testing.assert_array_equal(listed[1]["audio"], first)  # each text draws from its own Generator(seed)
    quiet = ours("hello world", seed=3)["audio"]  # the config's noise scales are 0: the seed changes nothing
    np.testing.assert_array_equal(quiet, ours("hello world", seed=9)["audio"])
    assert_same_audio(ours("hello world", seed=3), theirs("hello world"))
    assert ours("hello world", speaking_rate=2.0)["audio"].shape[1] < quiet.shape[1]


def test_vits_options_and_bad_inputs(vits):
    ours, _ = vits
    with pytest.raises(InvalidOptionError, match="generate_kwargs"):
        ours("hi", generate_kwargs={"max_new_tokens": 5})
    with pytest.raises(InvalidOptionError, match="speaker_id"):
        ours("hi", forward_params={"speaker_id": 0})
    for bad in ({"seed": -1}, {"seed": 1.5}, {"noise_scale": -0.1}, {"speaking_rate": 0}, {"forward_params": [1]},
                {"threshold": 0.5}):
        with pytest.raises(InvalidOptionError):
            ours("hi", **bad)
    for bad in ("", "   ", 42, None, ["hi", 3]):
        with pytest.raises(InvalidInputError):
            ours(bad)
    with pytest.raises(InvalidInputError, match="vocabulary"):
        ours("!!! 123")


def test_vits_tokenizer_matches_transformers(folders):
    from transformers import AutoTokenizer

    theirs = AutoTokenizer.from_pretrained(str(folders["vits"]))
    ours = VitsTokenizer(ModelFolder.open(folders["vits_onnx"]))
    for text in [*TEXTS, "ÀB_c", "a_", "__x", "Hello <unk> World", "  a  b  ", "!!!", ""]:
        assert ours.encode(text) == theirs(text)["input_ids"], text


def test_vits_one_graph_folders(folders, vits, tmp_path):
    """optimum's own VITS export (model.onnx, noise drawn inside the graph, no manifest) runs too; noise options are
    refused there."""
    from optimum.exporters.onnx import main_export

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main_export(str(folders["vits"]), str(tmp_path / "optimum"), task="text-to-audio", do_validation=False)
    pipe = onnxpipe.pipeline(model=tmp_path / "optimum")
    assert pipe.single_graph and pipe.task == "text-to-audio"
    for text in TEXTS[:2]:
        assert_same_audio(pipe(text), vits[1](text))
    with pytest.raises(InvalidOptionError, match="one-graph"):
        pipe("hi", seed=1)


# -- SpeechT5 -----------------------------------------------------------------------------------------------------
def test_speecht5_parity(speecht5):
    import torch

    ours, theirs = speecht5
    speaker = tta.speaker_embedding()
    lengths = set()
    for text in TEXTS:
        got = ours(text, forward_params={"speaker_embeddings": speaker})
        assert got["audio"].ndim == 1  # generate_speech with a vocoder: (samples,)
        assert_same_audio(got, theirs(text, forward_params={"speaker_embeddings": torch.from_numpy(speaker)}))
        lengths.add(got["audio"].shape[0])
    assert len(lengths) > 1  # the stop head ends the texts at different steps


def test_speecht5_generation_options(speecht5):
    import torch

    ours, theirs = speecht5
    speaker = tta.speaker_embedding(1)
    for kwargs in ({"threshold": 0.9}, {"minlenratio": 1.5}, {"maxlenratio": 0.5}, {"threshold": 0.2, "maxlenratio": 3}):
        got = ours("hello world", forward_params={"speaker_embeddings": speaker}, generate_kwargs=kwargs)
        want = theirs("hello world", forward_params={"speaker_embeddings": torch.from_numpy(speaker)},
                      generate_kwargs=kwargs)
        assert_same_audio(got, want)
    in_forward = ours("hello world", forward_params={"speaker_embeddings": speaker[0].tolist(), "threshold": 0.9})
    assert_same_audio(in_forward, ours("hello world", forward_params={"speaker_embeddings": speaker},
                                       generate_kwargs={"threshold": 0.9}))


def test_speecht5_audio_depends_on_text_and_speaker(speecht5):
    ours, _ = speecht5
    first = ours("hello world", forward_params={"speaker_embeddings": tta.speaker_embedding(0)})["audio"]
    other = ours("hello world", forward_params={"speaker_embeddings": tta.speaker_embedding(1)})["audio"]
    assert first.shape != other.shape or not np.allclose(first, other)
    text = ours("jello world", forward_params={"speaker_embeddings": tta.speaker_embedding(0)})["audio"]
    assert first.shape != text.shape or not np.allclose(first, text)


def test_speecht5_seeded_dropout(folders):
    # the tiny model's prenet dropout is 0 (deterministic in torch); pretend it is 0.5, as real checkpoints have, to
    # draw keep masks (the graph's 1 / (1 - p) scale stays the export's)
    pipe = onnxpipe.pipeline("text-to-audio", folders["speecht5_onnx"])
    pipe.dropout = 0.5
    options = {"forward_params": {"speaker_embeddings": tta.speaker_embedding()}}
    first = pipe("hello world", seed=0, **options)["audio"]
    assert np.array_equal(first, pipe("hello world", seed=0, **options)["audio"])
    other = pipe("hello world", seed=1, **options)["audio"]
    assert first.shape != other.shape or not np.allclose(first, other)


def test_speecht5_options_and_bad_inputs(speecht5):
    ours, _ = speecht5
    speaker = {"speaker_embeddings": tta.speaker_embedding()}
    with pytest.raises(InvalidOptionError, match="speaker_embeddings"):
        ours("hello")
    for bad in ({"forward_params": {"speaker_embeddings": np.zeros((1, 3))}},
                {"forward_params": {"speaker_embeddings": "x"}},
                {"forward_params": {**speaker, "vocoder": None}},
                {"forward_params": speaker, "generate_kwargs": {"do_sample": True}},
                {"forward_params": speaker, "generate_kwargs": {"threshold": "high"}},
                {"forward_params": speaker, "noise_scale": 0.5}):
        with pytest.raises(InvalidOptionError):
            ours("hello", **bad)
    for bad in ("", " ", 3.5, b"hello"):
        with pytest.raises(InvalidInputError):
            ours(bad, forward_params=speaker)


def test_speecht5_plain_optimum_folder_is_refused(folders, tmp_path):
    from optimum.exporters.onnx import main_export

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main_export(str(folders["speecht5"]), str(tmp_path / "optimum"), task="text-to-audio",
                    model_kwargs={"vocoder": str(folders["hifigan"])}, do_validation=False)
    with pytest.raises(OnnxpipeError, match="onnxpipe export"):
        onnxpipe.pipeline("text-to-audio", tmp_path / "optimum")


def test_speecht5_tokenizer_matches_transformers(folders, speecht5):
    from transformers import AutoTokenizer

    theirs = AutoTokenizer.from_pretrained(str(folders["speecht5"]))
    ours, _ = speecht5
    for text in [*TEXTS, "Café naïve ＡＢＣ ﬁ", "unknown ∑∑ ⌘ 😀", "with </s> inside", "  spaces   here "]:
        assert ours.encoder.tokenizer.encode(text).ids == theirs(text)["input_ids"], text


# -- both -----------------------------------------------------------------------------------------------------------
def test_alias_classes_and_task_inference(folders):
    for name in ("vits_onnx", "speecht5_onnx"):
        pipe = onnxpipe.pipeline(model=folders[name])
        assert isinstance(pipe, TextToAudioPipeline) and pipe.task == "text-to-audio"
    assert "text-to-audio" in onnxpipe.list_tasks()


def test_export_refusals(folders, tmp_path):
    from onnxpipe_export import export

    with pytest.raises(OnnxpipeError, match="SpeechT5"):
        export(folders["vits"], "text-to-audio", tmp_path / "a", vocoder=str(folders["hifigan"]), quiet=True)
    with pytest.raises(OnnxpipeError, match="fp32"):
        export(folders["vits"], "text-to-audio", tmp_path / "b", dtype="int8", quiet=True)
    with pytest.raises(OnnxpipeError, match="vocoder"):
        export(folders["vits"], "text-classification", tmp_path / "c", vocoder="x", quiet=True)


def test_cli_run_writes_wav(folders, tmp_path, capsys):
    out = tmp_path / "speech.wav"
    assert cli.main(["run", "text-to-speech", "hello world", "--model", str(folders["vits_onnx"]), "--output", str(out)]) == 0
    samples, rate = read_wav(out.read_bytes())
    expected = onnxpipe.pipeline("text-to-audio", folders["vits_onnx"])("hello world")
    assert rate == expected["sampling_rate"]
    np.testing.assert_array_equal(samples, expected["audio"][0])
    assert cli.main(["run", "text-to-audio", "a", "hi", "--model", str(folders["vits_onnx"]), "--output", str(out)]) == 0
    assert (tmp_path / "speech-1.wav").is_file() and (tmp_path / "speech-2.wav").is_file()
    with pytest.raises(SystemExit, match="--output"):
        cli.main(["run", "text-to-audio", "hi", "--model", str(folders["vits_onnx"])])


@pytest.mark.parametrize("kind", ["vits", "speecht5"])
def test_max_audio_seconds_bounds_the_speech(folders, kind):
    """A call's limits stop a text whose speech would pass max_audio_seconds before the waveform is made (the
    length known exactly: one below refuses, one above passes)."""
    from onnxpipe import Limits

    kwargs = {} if kind == "vits" else {"forward_params": {"speaker_embeddings": tta.speaker_embedding(0)}}
    text = TEXTS[1]
    plain = onnxpipe.pipeline("text-to-audio", folders[f"{kind}_onnx"])
    result = plain(text, seed=0, **kwargs)
    seconds = np.asarray(result["audio"]).shape[-1] / result["sampling_rate"]
    fits = onnxpipe.pipeline("text-to-audio", folders[f"{kind}_onnx"], limits=Limits(max_audio_seconds=seconds * 1.001))
    assert np.array_equal(fits(text, seed=0, **kwargs)["audio"], result["audio"])
    short = onnxpipe.pipeline("text-to-audio", folders[f"{kind}_onnx"], limits=Limits(max_audio_seconds=seconds * 0.99))
    with pytest.raises(InvalidInputError, match="max_audio_seconds"):
        short(text, seed=0, **kwargs)


def test_limited_calls_bound_the_vits_text(folders):
    """VITS has no position table: a limited call (a server's) refuses a text past LIMITED_MAX_IDS unless
    max_input_tokens says otherwise; an unlimited call (the library's default) takes it."""
    from onnxpipe import Limits
    from onnxpipe.tasks.text_to_audio_vits import LIMITED_MAX_IDS

    limited = onnxpipe.pipeline("text-to-audio", folders["vits_onnx"], limits=Limits())
    long_text = "hello world " * (LIMITED_MAX_IDS // 12 + 1)
    with pytest.raises(InvalidInputError, match="--max-input-tokens"):
        limited(long_text)
    assert limited("hello world")["audio"].size > 0
    set_bound = onnxpipe.pipeline("text-to-audio", folders["vits_onnx"], limits=Limits(max_input_tokens=8))
    with pytest.raises(InvalidInputError, match="max_input_tokens"):
        set_bound("hello world")
    unlimited = onnxpipe.pipeline("text-to-audio", folders["vits_onnx"])
    assert len(unlimited.tokenizer.encode(long_text)) > LIMITED_MAX_IDS and unlimited(long_text, seed=0)["audio"].size > 0
