"""Word error rate (onnxpipe.text.wer): the normalization and known values."""

from __future__ import annotations

import pytest

from onnxpipe.text.wer import edit_distance, normalize, wer, word_errors


def test_normalize_lowercases_strips_punctuation_and_collapses_spaces():
    assert normalize("  Hello,   World!  It's 3.5 km — OK?") == "hello world its 3 5 km ok"
    assert normalize("Don’t <|en|> stop\n\tnow...") == "dont en stop now"
    assert normalize("") == ""


def test_edit_distance_counts_substitutions_insertions_deletions():
    assert edit_distance([], []) == 0
    assert edit_distance(["a", "b", "c"], ["a", "b", "c"]) == 0
    assert edit_distance(["a", "b", "c"], ["a", "x", "c"]) == 1
    assert edit_distance(["a", "b", "c"], ["a", "c"]) == 1
    assert edit_distance(["a", "b"], ["a", "b", "c", "d"]) == 2
    assert edit_distance(["kitten"], []) == 1


def test_known_values():
    # the classic example: 1 substitution + 1 deletion + 1 insertion over 6 reference words
    assert word_errors("the cat sat on the mat", "the bat sat on mat mat too") == (3, 6)
    assert wer("The quick brown fox.", "the quick brown fox") == 0.0
    assert wer("the quick brown fox", "the quack brown") == pytest.approx(0.5)
    # corpus WER pools edits and words over clips (not a mean of per-clip rates)
    assert wer(["a b c d", "e f"], ["a b c d", "x y"]) == pytest.approx(2 / 6)
    assert wer("", "") == 0.0
    assert wer("", "hello there") == 2.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2 references and 1 hypotheses"):
        wer(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="two texts or two lists"):
        wer("a", ["a"])
