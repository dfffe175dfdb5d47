"""Whisper word timestamps (return_timestamps="word"): parity with transformers.pipeline on the tiny random Whisper
(whisper_checkpoints, whose generation config names alignment heads), the numpy DTW / median filter against
transformers' own, word grouping, and the errors of folders that cannot give word timestamps.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from support import whisper_checkpoints as wc

from onnxpipe import pipeline
from onnxpipe.errors import InvalidOptionError
from onnxpipe.tasks.whisper.alignment import dynamic_time_warping, median_filter, token_times
from onnxpipe.tasks.whisper.words import combine_into_words

TASK = "automatic-speech-recognition"
FRAME = 0.02  # seconds: one encoder position


@pytest.fixture(scope="module")
def whisper(models):
    """(onnxpipe fp32 pipeline, transformers pipeline, export) of the session's tiny Whisper."""
    import transformers

    exported = models._once("whisper-tiny", TASK, wc.build_whisper)
    transformers.logging.set_verbosity_error()
    return pipeline(TASK, model=str(exported.onnx), dtype="fp32"), models.reference_of(exported), exported


def assert_same_words(got: dict, want: dict) -> None:
    """Same text and words; each word's start and end within one frame (0.02 s) of transformers'."""
    assert got["text"] == want["text"]
    assert [c["text"] for c in got["chunks"]] == [c["text"] for c in want["chunks"]], (got, want)
    for ours, theirs in zip(got["chunks"], want["chunks"]):
        assert np.allclose(ours["timestamp"], theirs["timestamp"], atol=FRAME + 1e-6), (ours, theirs)
        assert {k for k in ours if k != "timestamp"} == {k for k in theirs if k != "timestamp"}


def both(ours, reference, audio, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = reference(audio.copy() if isinstance(audio, np.ndarray) else [a.copy() for a in audio], **options)
    got = ours(audio.copy() if isinstance(audio, np.ndarray) else [a.copy() for a in audio], **options)
    return got, want


@pytest.mark.parametrize("kind", ["speechlike", "noise", "chirp"])
@pytest.mark.parametrize("num_beams", [1, 3])
def test_word_timestamps_match_transformers(whisper, kind, num_beams):
    ours, reference, _ = whisper
    got, want = both(ours, reference, wc.clip(3.0, kind, seed=1), return_timestamps="word", num_beams=num_beams)
    assert len(want["chunks"]) >= 3 and want["chunks"][-1]["timestamp"][1] > 0  # times that say something
    assert_same_words(got, want)


def test_word_timestamps_with_language_batches_and_long_audio(whisper):
    ours, reference, _ = whisper
    # seeds chosen where transformers' own word splitting does not raise IndexError on the random tokens' partial
    # UTF-8 characters (its _split_tokens_on_unicode indexes past the text; words.py checks the bound)
    clips = [wc.clip(2.0, "speechlike", seed=5), wc.clip(4.0, "noise", seed=6)]
    got, want = both(ours, reference, clips, return_timestamps="word", return_language=True, num_beams=1, batch_size=2)
    for g, w in zip(got, want):
        assert_same_words(g, w)
    got, want = both(ours, reference, wc.varied(22.0, seed=2), return_timestamps="word", num_beams=1,
                     chunk_length_s=10, batch_size=2)
    assert_same_words(got, want)


def test_word_timestamps_long_form(whisper):
    """> 30 s without chunking: windows seek to their last timestamp; word times carry each window's offset."""
    ours, reference, _ = whisper
    got, want = both(ours, reference, wc.varied(47.0, seed=1), return_timestamps="word", num_beams=1)
    assert_same_words(got, want)


def test_numpy_alignment_matches_transformers():
    import torch
    from transformers.models.whisper.generation_whisper import _dynamic_time_warping, _median_filter

    rng = np.random.default_rng(0)
    for shape in [(1, 10), (5, 40), (30, 300), (6, 6)]:
        matrix = rng.normal(size=shape)
        for a, b in zip(dynamic_time_warping(matrix), _dynamic_time_warping(matrix)):
            assert np.array_equal(a, b)
        values = rng.normal(size=(2, 3, *shape)).astype(np.float32)
        assert np.array_equal(median_filter(values, 7), _median_filter(torch.from_numpy(values), 7).numpy())
    ties = np.zeros((4, 9))
    for a, b in zip(dynamic_time_warping(ties), _dynamic_time_warping(ties)):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="odd"):
        median_filter(np.zeros((2, 9)), 4)


def test_token_times_follow_a_diagonal_attention():
    """Tokens that attend to successive stretches of audio get increasing times; the last token repeats."""
    heads, prompt, tokens, positions = 2, 3, 5, 100
    weights = np.random.default_rng(0).uniform(0, 1e-3, (heads, prompt + tokens - 1, positions)).astype(np.float32)
    for k in range(tokens - 1):
        weights[:, prompt + k, 10 + 15 * k : 20 + 15 * k] = 1.0
    times = token_times(weights, prompt, num_frames=200, median_width=7)
    assert times.dtype == np.float32 and len(times) == tokens
    assert list(np.diff(times[:-1]) > 0) == [True] * (tokens - 2) and times[-1] == times[-2]
    assert token_times(weights[:, :prompt], prompt, None, 7).tolist() == [0.0]


def test_words_group_tokens_as_transformers(whisper):
    from transformers.models.whisper.tokenization_whisper import _combine_tokens_into_words

    ours, reference, _ = whisper
    tokenizer = reference.tokenizer
    text = ' Hello, "quick" brown-fox! It\'s (really) 3.5 km. Naïve café?'
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    want = _combine_tokens_into_words(tokenizer, ids, "english")
    got = combine_into_words(ours.vocabulary.decode, ids, ours.vocabulary.eos_token_id, "english")
    assert got[0] == want[0] and got[1] == want[1] and got[2] == want[2]
    unspaced = combine_into_words(ours.vocabulary.decode, ids, ours.vocabulary.eos_token_id, "japanese")
    assert unspaced[0] == _combine_tokens_into_words(tokenizer, ids, "japanese")[0]


def test_folders_without_cross_attentions_or_heads_say_how_to_fix(whisper, tmp_path):
    import onnx

    _, _, exported = whisper
    manifest = json.loads((exported.onnx / "onnxpipe.json").read_text())
    assert manifest["word_timestamps"]["decoder_outputs"] == ["cross_attentions.0", "cross_attentions.1"]

    old = tmp_path / "old"  # as exported before the outputs existed (no manifest: plain naming convention)
    shutil.copytree(exported.onnx, old)
    (old / "onnxpipe.json").unlink()
    model = onnx.load(str(old / "decoder_model_merged.onnx"))
    for graph in [model.graph, *(a.g for a in model.graph.node[0].attribute if a.name.endswith("branch"))]:
        kept = [o for o in graph.output if not o.name.startswith("cross_attentions.")]
        del graph.output[:]
        graph.output.extend(kept)
    node = model.graph.node[0]
    outputs = [o for o in node.output if not o.startswith("cross_attentions.")]
    del node.output[:]
    node.output.extend(outputs)
    onnx.save(model, str(old / "decoder_model_merged.onnx"))
    asr = pipeline(TASK, model=str(old), dtype="fp32")
    clip = wc.clip(2.0, "noise")
    assert asr(clip.copy(), num_beams=1)["text"]  # everything else still works
    with pytest.raises(InvalidOptionError, match="Re-export the checkpoint: `onnxpipe export CHECKPOINT"):
        asr(clip.copy(), return_timestamps="word")

    generation = json.loads((old / "generation_config.json").read_text())
    del generation["alignment_heads"]
    (old / "generation_config.json").write_text(json.dumps(generation))
    with pytest.raises(InvalidOptionError, match="alignment_heads"):
        pipeline(TASK, model=str(old), dtype="fp32")(clip.copy(), return_timestamps="word")
    with pytest.raises(InvalidOptionError, match="'char'|char"):
        asr(clip.copy(), return_timestamps="char")
