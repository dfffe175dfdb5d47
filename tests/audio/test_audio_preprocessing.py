"""Audio pre-processing against transformers: feature extractors array to array, CTC decoding, plus the
resampler and the input decoding (WAV, arrays, dicts) and their errors. No model needed."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from support import audio_checkpoints as ac

from onnxpipe.audio.features import feature_extractor_from_config
from onnxpipe.audio.inputs import load_audio
from onnxpipe.audio.resample import resample
from onnxpipe.audio.wav import read_wav
from onnxpipe.errors import InvalidInputError, MissingModelFileError
from onnxpipe.text.ctc import CTCVocabulary

ATOL = 1e-4  # DESIGN.md: preprocessing equal to transformers within 1e-4


def whisper_clips() -> dict[str, np.ndarray]:
    return {
        "silence": np.zeros(5 * ac.RATE, np.float32),
        "noise": ac.noise(3.0, seed=1),
        "sweep": ac.chirp(10.0, 50.0, 7900.0),
        "short": ac.tone(0.5, 300.0),
        "longer than 30 s": ac.speechlike(31.0, seed=2),
    }


@pytest.mark.parametrize("feature_size", [80, 128])  # whisper-tiny..large-v2, large-v3
def test_whisper_features_equal_transformers(feature_size):
    from transformers import WhisperFeatureExtractor

    ref = WhisperFeatureExtractor(feature_size=feature_size)
    ours = feature_extractor_from_config(ref.to_dict())
    for name, clip in whisper_clips().items():
        expected = ref(clip, sampling_rate=ac.RATE, return_tensors="np", return_attention_mask=True)
        got = ours([clip], attention_mask=True)
        assert got["input_features"].shape == (1, feature_size, 3000), name
        np.testing.assert_allclose(got["input_features"], expected["input_features"], atol=ATOL, rtol=0, err_msg=name)
        np.testing.assert_array_equal(got["attention_mask"], expected["attention_mask"], err_msg=name)
    # the features are not a constant: silence and noise differ
    assert np.abs(ours([whisper_clips()["noise"]])["input_features"] - ours([whisper_clips()["silence"]])["input_features"]).max() > 1.0


def test_whisper_features_without_truncation_pad_to_the_longest():
    """Long-form input (truncation=False, padding="longest"), as transformers' pipeline prepares > 30 s audio."""
    from transformers import WhisperFeatureExtractor

    ref = WhisperFeatureExtractor()
    ours = feature_extractor_from_config(ref.to_dict())
    clip = ac.speechlike(35.0, seed=3)
    expected = ref(clip, sampling_rate=ac.RATE, truncation=False, padding="longest", return_tensors="np", return_attention_mask=True)
    got = ours([clip], truncation=False, attention_mask=True)
    assert got["input_features"].shape == expected["input_features"].shape == (1, 80, 3500)
    np.testing.assert_allclose(got["input_features"], expected["input_features"], atol=ATOL, rtol=0)
    np.testing.assert_array_equal(got["attention_mask"], expected["attention_mask"])


@pytest.mark.parametrize("do_normalize", [True, False])
def test_wav2vec2_features_equal_transformers(do_normalize):
    from transformers import Wav2Vec2FeatureExtractor

    ref = Wav2Vec2FeatureExtractor(do_normalize=do_normalize, return_attention_mask=True, padding_value=0.0)
    ours = feature_extractor_from_config(ref.to_dict())
    clips = [ac.tone(0.3, 440.0), ac.noise(0.5, seed=4), ac.chirp(0.2)]
    for clip in clips:  # alone, as the pipelines featurize them
        expected = ref(clip, sampling_rate=ac.RATE, return_tensors="np")
        np.testing.assert_allclose(ours([clip])["input_values"], expected["input_values"], atol=1e-6, rtol=0)
    expected = ref(clips, sampling_rate=ac.RATE, padding=True, return_tensors="np")  # padded batch: normalized over real samples
    got = ours(clips)
    np.testing.assert_allclose(got["input_values"], expected["input_values"], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(got["attention_mask"], expected["attention_mask"])
    if do_normalize:
        assert abs(float(got["input_values"][0, : len(clips[0])].std()) - 1.0) < 1e-3


@pytest.mark.parametrize("settings", [{}, {"num_mel_bins": 32, "max_length": 100}, {"do_normalize": False}])
def test_ast_features_equal_transformers(settings):
    """transformers' numpy kaldi filter bank (its path without torchaudio, the one installed here)."""
    from transformers import ASTFeatureExtractor

    with warnings.catch_warnings():  # 128 kaldi bins over 257 FFT bins: transformers warns of an empty filter
        warnings.simplefilter("ignore")
        ref = ASTFeatureExtractor(**settings)
    ours = feature_extractor_from_config(ref.to_dict())
    for clip in (ac.tone(1.0, 440.0), ac.noise(3.0, seed=1), ac.chirp(12.0), ac.speechlike(0.5, seed=2), np.zeros(8000, np.float32)):
        expected = ref(clip, sampling_rate=ac.RATE, return_tensors="np")["input_values"]
        got = ours([clip])["input_values"]
        assert got.shape == expected.shape == (1, ref.max_length, ref.num_mel_bins)
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    assert np.abs(ours([ac.tone(1.0, 440.0)])["input_values"] - ours([ac.noise(1.0, seed=1)])["input_values"]).max() > 1.0
    with pytest.raises(InvalidInputError, match="shorter than one 400-sample"):
        ours([np.ones(300, np.float32)])


def test_unknown_feature_extractor_is_refused():
    with pytest.raises(MissingModelFileError, match="SpeechT5FeatureExtractor"):
        feature_extractor_from_config({"feature_extractor_type": "SpeechT5FeatureExtractor"})


# -- resampling --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("orig,new", [(8000, 16000), (44100, 16000), (48000, 16000), (22050, 16000), (16000, 8000)])
def test_resampler_keeps_in_band_tones_and_lengths(orig, new):
    """transformers resamples with torchaudio's windowed-sinc filter (Hann window, 6 zero crossings, rolloff 0.99);
    onnxpipe implements that filter in numpy. torchaudio is not installed here (transformers' pipelines raise
    ImportError on dict inputs at another rate), so the reference is the analytic signal: a 440 Hz tone comes out
    within 5e-4 of the true tone away from the edges (measured 1.1e-4 to 2.4e-4), with ceil(n * new / orig) samples.
    Against scipy's resample_poly (a Kaiser-windowed filter) tones differ by < 1e-3 and white noise by ~1e-2 rms,
    all of it near the band edge where the two filters' transitions differ."""
    seconds = 1.0
    x = ac.tone(seconds, 440.0, rate=orig)
    y = resample(x, orig, new)
    assert y.dtype == np.float32 and len(y) == int(np.ceil(len(x) * new / orig))
    truth = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(len(y)) / new)
    assert np.abs(y[100:-100] - truth[100:-100]).max() < 5e-4


def test_resampler_removes_frequencies_above_the_new_nyquist():
    y = resample(ac.tone(1.0, 7000.0, rate=48000), 48000, 8000)  # 7 kHz cannot exist at 8 kHz
    assert np.abs(y[100:-100]).max() < 0.01
    assert resample(ac.tone(0.1, 100.0), ac.RATE, ac.RATE) is not None  # same rate: unchanged
    np.testing.assert_array_equal(resample(ac.tone(0.1, 100.0), ac.RATE, ac.RATE), ac.tone(0.1, 100.0))


# -- decoding inputs ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("channels", [1, 2])
def test_wav_files_are_read_natively(width, channels, tmp_path):
    left, right = ac.tone(0.25, 440.0), ac.tone(0.25, 660.0, amplitude=0.3)
    samples = left if channels == 1 else np.stack([left, right], axis=1)
    data = ac.wav_bytes(samples, width=width, channels=channels)
    decoded, rate = read_wav(data)
    expected = left if channels == 1 else (left + right) / 2
    step = {1: 1 / 128, 2: 1 / 32768, 3: 1 / (1 << 23), 4: 1 / (1 << 31)}[width]
    assert rate == ac.RATE
    np.testing.assert_allclose(decoded, expected, atol=step, rtol=0)
    path = tmp_path / "clip.wav"
    path.write_bytes(data)
    np.testing.assert_array_equal(load_audio(str(path), ac.RATE), decoded)  # a path
    np.testing.assert_array_equal(load_audio(data, ac.RATE), decoded)  # bytes
    np.testing.assert_array_equal(load_audio(path, ac.RATE), decoded)  # a PathLike


def test_base64_strings_and_turned_off_sources(tmp_path):
    """Strings may carry the file itself (base64, with or without a data: prefix); a server's pipeline
    (MediaSources.inline_only()) refuses paths and URLs without looking them up."""
    import base64

    from onnxpipe.media_sources import MediaSources

    data = ac.wav_bytes(ac.tone(0.2, 440.0))
    decoded, _ = read_wav(data)
    encoded = base64.b64encode(data).decode()
    np.testing.assert_array_equal(load_audio(encoded, ac.RATE), decoded)
    np.testing.assert_array_equal(load_audio("data:audio/wav;base64," + encoded, ac.RATE, sources=MediaSources.inline_only()), decoded)
    path = tmp_path / "clip.wav"
    path.write_bytes(data)
    with pytest.raises(InvalidInputError, match="base64"):
        load_audio(str(path), ac.RATE, sources=MediaSources.inline_only())
    with pytest.raises(InvalidInputError, match="URL"):
        load_audio("https://example.com/a.wav", ac.RATE, sources=MediaSources.inline_only())


def float_wav(samples: np.ndarray, rate: int, extensible: bool) -> bytes:
    """An IEEE-float WAV (format 3, or WAVE_FORMAT_EXTENSIBLE with the float sub-format), which `wave` cannot read."""
    import struct

    channels = 1 if samples.ndim == 1 else samples.shape[1]
    payload = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else 3, channels, rate, rate * 4 * channels, 4 * channels, 32)
    if extensible:
        fmt += struct.pack("<HHI", 22, 32, 0) + struct.pack("<H", 3) + bytes(14)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"LIST" + struct.pack("<I", 5) + b"junk\x00\x00"
    body += b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("extensible", [False, True])
def test_float_wav_files_are_read_natively(extensible):
    stereo = np.stack([ac.tone(0.2, 440.0), ac.chirp(0.2)], axis=1)
    decoded, rate = read_wav(float_wav(stereo, 22050, extensible))
    assert rate == 22050
    np.testing.assert_allclose(decoded, stereo.mean(axis=1), atol=1e-7)
    np.testing.assert_allclose(load_audio(float_wav(stereo, 22050, extensible), ac.RATE), resample(decoded, 22050, ac.RATE), atol=1e-7)


def test_a_wav_at_another_rate_is_resampled():
    clip8k = ac.tone(0.5, 300.0, rate=8000)
    decoded = load_audio(ac.wav_bytes(clip8k, rate=8000, width=4), ac.RATE)
    np.testing.assert_allclose(decoded, resample(clip8k, 8000, ac.RATE), atol=1e-6)


def test_arrays_and_dicts():
    clip = ac.tone(0.2, 440.0)
    np.testing.assert_array_equal(load_audio(clip, ac.RATE), clip)  # a float array at the model's rate: as is
    pcm = np.round(clip * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio(pcm, ac.RATE), pcm / 32768.0, atol=1e-7)  # int16 PCM scaled
    stereo = np.stack([clip, np.zeros_like(clip)])
    np.testing.assert_allclose(load_audio(stereo, ac.RATE), clip / 2, atol=1e-7)  # (channels, samples) downmixed
    np.testing.assert_allclose(load_audio(stereo.T, ac.RATE), clip / 2, atol=1e-7)  # (samples, channels) too
    for key in ("raw", "array"):
        np.testing.assert_array_equal(load_audio({key: clip, "sampling_rate": ac.RATE}, ac.RATE), clip)
    clip8k = ac.tone(0.2, 440.0, rate=8000)
    got = load_audio({"array": clip8k, "sampling_rate": 8000, "path": "x.wav"}, ac.RATE)
    np.testing.assert_array_equal(got, resample(clip8k, 8000, ac.RATE))


def test_bad_inputs_get_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(InvalidInputError, match="empty"):
        load_audio(np.zeros(0, np.float32), ac.RATE)
    bad = ac.tone(0.1, 440.0)
    bad[5] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        load_audio(bad, ac.RATE)
    with pytest.raises(InvalidInputError, match="sampling_rate"):
        load_audio({"raw": ac.tone(0.1, 440.0)}, ac.RATE)
    with pytest.raises(InvalidInputError, match="sampling_rate"):
        load_audio({"raw": ac.tone(0.1, 440.0), "sampling_rate": -5}, ac.RATE)
    with pytest.raises(InvalidInputError, match="channel axis"):
        load_audio(np.zeros((50, 60), np.float32), ac.RATE)
    with pytest.raises(InvalidInputError, match="not an existing audio file"):
        load_audio(str(tmp_path / "missing.wav"), ac.RATE)
    with pytest.raises(InvalidInputError, match="audio input must be"):
        load_audio(3.5, ac.RATE)
    # a bare array carries no rate: an 8 kHz array passed as is is taken to be 16 kHz (as in transformers);
    # nothing can detect it, which is why the dict form exists
    assert len(load_audio(ac.tone(1.0, 440.0, rate=8000), ac.RATE)) == 8000
    # compressed audio needs ffmpeg; simulate a machine without it
    monkeypatch.setenv("PATH", str(tmp_path))
    flac = tmp_path / "clip.flac"
    flac.write_bytes(b"fLaC\x00\x00\x00\x22" + os.urandom(64))
    with pytest.raises(InvalidInputError, match="ffmpeg"):
        load_audio(str(flac), ac.RATE)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(InvalidInputError, match="WAV"):
        load_audio(str(broken), ac.RATE)


# -- CTC decoding ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("do_lower_case", [False, True])
def test_ctc_decoding_equals_wav2vec2_ctc_tokenizer(tmp_path, do_lower_case):
    import json

    from transformers import Wav2Vec2CTCTokenizer

    (tmp_path / "vocab.json").write_text(json.dumps(ac.VOCAB))
    ref = Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"), do_lower_case=do_lower_case)
    ref.save_pretrained(tmp_path / "saved")
    read = lambda name: json.loads((tmp_path / "saved" / name).read_text())  # noqa: E731
    ours = CTCVocabulary.from_files(read("vocab.json"), read("tokenizer_config.json"), read("special_tokens_map.json"), "t")
    v = ac.VOCAB
    sequences = [
        [],
        [v["<pad>"]] * 5,
        [v["|"], v["T"], v["T"], v["<pad>"], v["T"], v["E"], v["|"], v["|"], v["A"], v["<pad>"], v["|"]],
        [v["<s>"], v["H"], v["H"], v["I"], v["<pad>"], v["|"], 99, v["'"], v["S"], v["</s>"], v["<unk>"]],
        [v["O"], v["<pad>"], v["O"], v["|"], v["N"], v["|"], v["<pad>"], v["|"], v["E"]],
    ]
    rng = np.random.default_rng(0)
    sequences += [rng.integers(0, len(v), 60).tolist() for _ in range(5)]
    for ids in sequences:
        expected = ref.decode(ids, output_char_offsets=True)
        text, chars = ours.decode(ids, with_offsets=True)
        assert text == expected.text == ref.decode(ids), ids
        assert [{k: (int(x) if k != "char" else x) for k, x in c.items()} for c in expected.char_offsets] == chars
        assert ref._get_word_offsets(expected.char_offsets, ref.replace_word_delimiter_char) == ours.word_offsets(chars)
