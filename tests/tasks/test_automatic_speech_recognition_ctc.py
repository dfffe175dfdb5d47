"""automatic-speech-recognition with CTC models: parity with transformers.pipeline on tiny Wav2Vec2ForCTC models
("group" norm without attention mask, "layer" norm with one), every option, chunking, and the errors."""

from __future__ import annotations

import difflib
import json

import numpy as np
import pytest
from support import audio_checkpoints as ac
from support.parity import assert_same

from onnxpipe import pipeline
from onnxpipe.audio.resample import resample
from onnxpipe.errors import InvalidInputError, InvalidOptionError

TASK = "automatic-speech-recognition"
# int8 (1-D convs kept fp32) vs torch fp32 on these hidden-size-32 models: transcripts of clips() keep a character
# similarity (difflib ratio) of 0.82-1.0 ("group" model) and 0.945-1.0 ("layer"), measured; logit frames of the
# export's validation clips agree 97%. Asserted with some room: 0.75
INT8_MIN_SIMILARITY = 0.75


def clips() -> list[np.ndarray]:
    return [ac.speechlike(1.5, seed=1), ac.tone(1.0, 440.0), ac.chirp(1.2), ac.noise(0.8, seed=2), ac.speechlike(0.6, seed=3)]


def long_clip() -> np.ndarray:
    return np.concatenate([ac.speechlike(2.0, seed=1), ac.tone(1.0, 500.0), ac.noise(1.0, seed=2), ac.speechlike(2.3, seed=5)])


@pytest.fixture(scope="module", params=["group", "layer"])
def exported(request, models):
    norm = request.param
    return models._once(f"audio-wav2vec2-ctc-{norm}", TASK, lambda folder: ac.build_ctc(folder, norm))


@pytest.fixture(scope="module")
def pair(models, exported):
    return pipeline("asr", model=str(exported.onnx), dtype="fp32"), models.reference_of(exported)


def test_transcripts_equal_transformers(pair):
    ours, ref = pair
    texts = []
    for clip in clips():
        got = ours(clip)
        assert_same(got, ref(clip.copy()))
        texts.append(got["text"])
    assert len(set(texts)) == len(texts), "the tiny model transcribes different clips alike"
    assert sum(map(bool, texts)) >= 3 and " " in "".join(texts), "expected non-blank transcripts with word breaks"
    assert ours(np.zeros(8000, np.float32))["text"] == ref(np.zeros(8000, np.float32))["text"]


@pytest.mark.parametrize("options", [
    {"return_timestamps": "char"},
    {"return_timestamps": "word"},
    {"chunk_length_s": 1.0},
    {"chunk_length_s": 10.0, "return_timestamps": "char"},  # one window longer than the clip
    {"chunk_length_s": 1.0, "stride_length_s": [0.1, 0.3], "return_timestamps": "word"},
    {"chunk_length_s": 0.9, "batch_size": 3, "return_timestamps": "char"},
])
def test_options_equal_transformers(pair, options):
    """Timestamps in seconds and chunked transcripts (windows, strides, frame merging) identical to transformers'."""
    ours, ref = pair
    clip = long_clip()
    expected = ref(clip.copy(), **options)
    got = ours(clip, **options)
    assert_same(got, expected)
    if "return_timestamps" in options:
        assert len(got["chunks"]) >= 3 and got["chunks"][-1]["timestamp"][1] > 5.0


def test_batched_chunks_of_unequal_length_equal_unbatched_ones(pair, exported):
    """Deliberate difference: transformers pads the shorter last chunk to batch it with full ones; a "group" norm
    wav2vec2 (no attention mask) then transcribes the padding too, so its batched text differs from its unbatched
    one. onnxpipe batches only equal-length chunks, so batch_size never changes the transcript."""
    ours, ref = pair
    clip, options = long_clip(), {"chunk_length_s": 2.5, "stride_length_s": 0.5}
    unbatched = ref(clip.copy(), **options)
    assert_same(ours(clip, batch_size=2, **options), unbatched)
    if "group" in exported.onnx.name:
        assert ref(clip.copy(), batch_size=2, **options)["text"] != unbatched["text"]


def test_batches_equal_single_calls(pair):
    ours, ref = pair
    batch = clips() + [ac.speechlike(1.5, seed=8)]  # two clips of 1.5 s share a batch
    assert_same(ours(batch, batch_size=4, return_timestamps="word"), [ref(c.copy(), return_timestamps="word") for c in batch])


@pytest.mark.parametrize("family", ["hubert", "wavlm", "data2vec-audio"])
def test_other_wav2vec2_family_models_equal_transformers(models, family):
    exported = models._once(f"audio-{family}-ctc", TASK, lambda folder: ac.build_family_ctc(folder, family))
    ours, ref = pipeline(TASK, model=str(exported.onnx), dtype="fp32"), models.reference_of(exported)
    options = {"return_timestamps": "word", "chunk_length_s": 1.0}
    assert_same(ours(long_clip(), **options), ref(long_clip(), **options))
    assert ours(long_clip())["text"] != ours(clips()[0])["text"]


def test_inputs_in_every_form(pair, tmp_path):
    """WAV paths and bytes (read natively; transformers needs ffmpeg for them), int16 PCM, stereo, and dicts.
    A dict at another rate is resampled by onnxpipe; transformers 4.57's ASR pipeline needs torchaudio for it (not
    installed here), and passes it the rate twice (F.resample(x, rate, rate, 16000)), so it would not resample."""
    ours, ref = pair
    clip = ac.speechlike(1.1, seed=4)
    forms, decoded = ac.pcm16_forms(clip, tmp_path)
    expected = ref(decoded)
    for item in (*forms, {"array": decoded, "sampling_rate": ac.RATE}):
        assert_same(ours(item), expected)
    assert_same(ours(np.stack([clip, clip])), ref(np.stack([clip, clip])))  # transformers averages axis 0 too
    clip8k = ac.speechlike(1.1, seed=4, rate=8000)
    assert_same(ours({"raw": clip8k, "sampling_rate": 8000}), ref(resample(clip8k, 8000, ac.RATE)))


def test_vocabulary_from_a_converted_tokenizer_json(pair, exported, tmp_path):
    """A transformers.js-style folder carries tokenizer.json instead of vocab.json: same transcripts."""
    import shutil

    ours, _ = pair
    folder = tmp_path / "converted"
    shutil.copytree(exported.onnx, folder)
    vocab = json.loads((folder / "vocab.json").read_text())
    (folder / "vocab.json").unlink()
    (folder / "onnxpipe.json").unlink()  # its support file list names vocab.json
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordPiece", "vocab": vocab}}))
    converted = pipeline(TASK, model=str(folder), dtype="fp32")
    assert converted(long_clip(), return_timestamps="word") == ours(long_clip(), return_timestamps="word")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        pipeline(TASK, model=str(folder), dtype="fp32")


def test_input_stride_drops_edge_frames_as_transformers(pair):
    ours, ref = pair
    clip = long_clip()
    for stride in ((1600, 3200), (0, 800), (8000, 0)):
        item = {"raw": clip, "sampling_rate": ac.RATE, "stride": stride}
        expected = ref(dict(item, raw=clip.copy()), return_timestamps="char")
        assert_same(ours(item, return_timestamps="char"), expected)
    assert ours(item)["text"] != ours(clip)["text"]
    with pytest.raises(InvalidInputError, match="longer than the clip"):
        ours({"raw": clip[:100], "sampling_rate": ac.RATE, "stride": (80, 80)})
    with pytest.raises(InvalidInputError, match="chunk_length_s"):
        ours(item, chunk_length_s=1.0)
    with pytest.raises(InvalidInputError, match="pair"):
        ours({"raw": clip, "sampling_rate": ac.RATE, "stride": 5})


def test_int8_transcripts_are_close(models, exported, pair):
    _, ref = pair
    int8 = pipeline(TASK, model=str(exported.onnx), dtype="int8")
    assert int8.dtype == "int8"
    for clip in clips():
        expected, got = ref(clip.copy())["text"], int8(clip)["text"]
        assert difflib.SequenceMatcher(None, got, expected).ratio() >= INT8_MIN_SIMILARITY, (got, expected)


def test_bad_options_and_inputs(pair):
    ours, _ = pair
    clip = clips()[0]
    with pytest.raises(InvalidOptionError, match="'char' or 'word'"):
        ours(clip, return_timestamps=True)
    with pytest.raises(InvalidOptionError, match="longer than the two strides"):
        ours(clip, chunk_length_s=1.0, stride_length_s=0.5)
    with pytest.raises(InvalidOptionError, match="stride_length_s"):
        ours(clip, chunk_length_s=1.0, stride_length_s=[0.1])
    with pytest.raises(InvalidOptionError, match="decoder_kwargs"):  # language-model decoding is not implemented
        ours(clip, decoder_kwargs={"beam_width": 10})
    with pytest.raises(InvalidOptionError, match="max_new_tokens"):
        ours(clip, max_new_tokens=5)
    with pytest.raises(InvalidInputError, match="empty"):
        ours(np.zeros(0, np.float32))
    with pytest.raises(InvalidInputError, match="NaN"):
        ours(np.array([0.1, np.inf, 0.2], np.float32))
    with pytest.raises(InvalidInputError, match="sampling_rate"):
        ours({"array": clip})


def test_speech_seq2seq_folders_other_than_whisper_are_refused(tmp_path):
    """Whisper folders go to the Whisper pipeline (tests/test_speech_recognition_whisper.py); a Whisper folder
    without its ONNX pair names the export command; other encoder-decoder speech models are refused."""
    from onnxpipe.errors import MissingModelFileError

    whisper = tmp_path / "whisper"
    whisper.mkdir()
    (whisper / "config.json").write_text(json.dumps({"model_type": "whisper", "architectures": ["WhisperForConditionalGeneration"]}))
    for task in (TASK, "asr", None):  # None: the task is read from the architectures
        with pytest.raises(MissingModelFileError, match="--task automatic-speech-recognition"):
            pipeline(task, model=str(whisper))
    other = tmp_path / "s2t"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "speech_to_text", "is_encoder_decoder": True}))
    with pytest.raises(NotImplementedError, match="Whisper only"):
        pipeline(TASK, model=str(other))


ISOLATED = r"""
import json, sys
for name in ("torch", "transformers", "optimum", "onnxpipe_export", "scipy"):
    sys.modules[name] = None  # any import of them now raises ImportError
import numpy as np
from onnxpipe import pipeline
clip = {"raw": np.sin(np.arange(12000) / 3.0).astype(np.float32), "sampling_rate": 8000}
asr = pipeline("asr", model=sys.argv[1], dtype="fp32")
classify = pipeline("audio-classification", model=sys.argv[2], dtype="int8")
print(json.dumps({"text": asr(clip, return_timestamps="word")["text"], "top": classify(clip, top_k=1)[0]["label"]}))
"""


def test_audio_runtime_needs_no_torch_transformers_or_scipy(models, exported):
    """Decoding, resampling, features, CTC decoding and both tasks run with the heavy stack unimportable."""
    import subprocess
    import sys

    classifier = models._once("audio-wav2vec2-classifier", "audio-classification", ac.build_classifier)
    out = subprocess.run(
        [sys.executable, "-c", ISOLATED, str(exported.onnx), str(classifier.onnx)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert isinstance(result["text"], str) and result["top"] in ac.LABELS
