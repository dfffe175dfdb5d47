"""Teacher forcing over a decoder graph (generation/teacher_forced.py): chunks that carry the cache give the scores
of one whole-sequence run, and next_token_scores is a plain log-softmax."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxpipe.errors import InvalidInputError
from onnxpipe.generation.onnx_decoder import graph_layout
from onnxpipe.generation.teacher_forced import next_token_scores, teacher_forced
from onnxpipe.session import OnnxSession


def test_next_token_scores_is_a_log_softmax():
    logits = np.array([[0.0, 1.0, 3.0], [1000.0, 0.0, 1000.0]], dtype=np.float32)
    scores = next_token_scores(logits, np.array([1, 2]))
    expected = -np.log(np.exp(1.0) / np.exp([0.0, 1.0, 3.0]).sum())
    assert scores.nll == pytest.approx([expected, np.log(2.0)])  # large logits do not overflow
    assert scores.top1.tolist() == [2, 0]
    with pytest.raises(InvalidInputError, match="one following token per position"):
        next_token_scores(logits, np.array([1]))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_chunks_with_the_cache_equal_one_run(generation_models, arch):
    folder = generation_models.get(arch).onnx
    session = OnnxSession(folder / "model.onnx")
    layout = graph_layout(session, json.loads((folder / "config.json").read_text()))
    ids = np.random.default_rng(0).integers(5, 400, size=(1, 90))
    whole = teacher_forced(session, layout, ids)
    chunked = teacher_forced(session, layout, ids, chunk=16)
    assert whole.nll.shape == whole.top1.shape == (89,)
    np.testing.assert_allclose(chunked.nll, whole.nll, atol=1e-4)
    assert (chunked.top1 == whole.top1).mean() >= 0.98  # a near tie may flip between the two paths
    with pytest.raises(InvalidInputError, match=r"\(1, T\) with T >= 2"):
        teacher_forced(session, layout, ids[:, :1])
