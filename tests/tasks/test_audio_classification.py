"""audio-classification: parity with transformers.pipeline on a tiny Wav2Vec2ForSequenceClassification (raw
samples) and a tiny Audio Spectrogram Transformer (kaldi filter banks)."""

from __future__ import annotations

import numpy as np
import pytest
from support import audio_checkpoints as ac
from support.parity import assert_same

from onnxpipe import pipeline
from onnxpipe.audio.resample import resample
from onnxpipe.errors import InvalidInputError, InvalidOptionError

TASK = "audio-classification"
# int8 vs torch fp32 on these hidden-size-32 models, over clips(): scores differ by at most 0.0125 (wav2vec2) and
# 0.058 (AST; 0.024 when its patch-embedding conv was int8 too: every Conv stays fp32 now), measured; 0.08 leaves room
# for other CPUs
INT8_ATOL = 0.08


def clips() -> list[np.ndarray]:
    return [
        ac.tone(1.0, 440.0), ac.chirp(1.5), ac.noise(0.7, seed=1), ac.speechlike(2.0, seed=3),
        ac.speechlike(1.0, seed=4), np.zeros(8000, np.float32) + 1e-3 * ac.noise(0.5, seed=5),
    ]


BUILDERS = {"wav2vec2": ("audio-wav2vec2-classifier", ac.build_classifier), "ast": ("audio-ast-classifier", ac.build_ast)}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def exported(request, models):
    name, build = BUILDERS[request.param]
    return models._once(name, TASK, build)


@pytest.fixture(scope="module")
def pair(models, exported):
    return pipeline(TASK, model=str(exported.onnx), dtype="fp32"), models.reference_of(exported)


def test_labels_and_scores_equal_transformers(pair):
    ours, ref = pair
    results = []
    for clip in clips():
        expected = ref(clip.copy())
        got = ours(clip)
        assert_same(got, expected)
        results.append(got)
    assert len(results[0]) == len(ac.LABELS)  # transformers' call-time default: every label
    assert len({r[0]["label"] for r in results}) > 1, "the tiny model gives one label for every clip"


@pytest.mark.parametrize("options", [
    {"top_k": 1}, {"top_k": 3}, {"top_k": 100}, {"top_k": None},
    {"function_to_apply": "sigmoid"}, {"function_to_apply": "none", "top_k": 2}, {"function_to_apply": "softmax"},
])
def test_options_equal_transformers(pair, options):
    ours, ref = pair
    for clip in clips()[:3]:
        assert_same(ours(clip, **options), ref(clip.copy(), **options))


def test_batches_equal_single_calls(pair):
    """Clips of one length share a batch; mixed lengths are batched by length, results in input order."""
    ours, ref = pair
    batch = clips() + [ac.tone(1.0, 880.0), ac.noise(1.0, seed=9)]
    expected = [ref(c.copy(), top_k=3) for c in batch]
    assert_same(ours(batch, batch_size=3, top_k=3), expected)


def test_files_bytes_dicts_and_pcm(pair, tmp_path):
    """WAV files and bytes are decoded natively (transformers needs ffmpeg for them); int16 PCM, stereo and dicts
    at another rate are normalized to the float mono clip at 16 kHz that transformers gets as an array."""
    ours, ref = pair
    clip = ac.speechlike(1.2, seed=7)
    forms, decoded = ac.pcm16_forms(clip, tmp_path)
    expected = ref(decoded)
    for item in (*forms, {"raw": decoded, "sampling_rate": ac.RATE}):
        assert_same(ours(item), expected)
    stereo = np.stack([clip, clip])
    assert_same(ours(stereo), ref(clip.copy()))
    clip8k = ac.speechlike(1.2, seed=7, rate=8000)
    assert_same(ours({"array": clip8k, "sampling_rate": 8000}), ref(resample(clip8k, 8000, ac.RATE)))


def test_int8_is_close(models, exported, pair):
    _, ref = pair
    int8 = pipeline(TASK, model=str(exported.onnx), dtype="int8")
    assert int8.dtype == "int8"
    for clip in clips():
        expected = {r["label"]: r["score"] for r in ref(clip.copy())}
        got = {r["label"]: r["score"] for r in int8(clip)}
        assert max(abs(got[k] - expected[k]) for k in expected) < INT8_ATOL


def test_pipeline_defaults_apply_to_every_call(exported, pair):
    """Deliberate difference: transformers resets top_k and function_to_apply at every call that does not pass them
    (pipeline(..., top_k=2) still returns every label); onnxpipe keeps the pipeline's options, per-call ones win."""
    _, ref = pair
    two = pipeline(TASK, model=str(exported.onnx), dtype="fp32", top_k=2)
    clip = clips()[0]
    assert_same(two(clip), ref(clip.copy(), top_k=2))
    assert len(two(clip, top_k=4)) == 4 and len(two(clip)) == 2


def test_bad_options_and_inputs(pair):
    ours, _ = pair
    with pytest.raises(InvalidOptionError, match="top_k"):
        ours(clips()[0], top_k=0)
    with pytest.raises(InvalidOptionError, match="function_to_apply"):
        ours(clips()[0], function_to_apply="relu")
    with pytest.raises(InvalidOptionError, match="chunk_length_s"):
        ours(clips()[0], chunk_length_s=1.0)
    with pytest.raises(InvalidInputError, match="empty"):
        ours(np.zeros(0, np.float32))
    with pytest.raises(InvalidInputError, match="NaN"):
        ours(np.full(100, np.nan, np.float32))
    with pytest.raises(InvalidInputError, match="sampling_rate"):
        ours({"raw": clips()[0]})
