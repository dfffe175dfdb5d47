"""onnxpipe.generation logits processors vs transformers' on fixed arrays; generation config resolution.

No model is needed: each numpy processor runs on the same float32 logits (several rows, -inf present)
as its transformers counterpart and must give the same scores (1e-6: both compute in float32).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from transformers.generation import logits_process as T

from onnxpipe.errors import InvalidOptionError
from onnxpipe.generation import GenerationConfig, resolve_generation_config
from onnxpipe.generation import processors as P
from onnxpipe.generation.generate import generation_lengths, special_tokens

VOCAB = 40


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(7)
    scores = (rng.standard_normal((5, VOCAB)) * 3).astype(np.float32)
    scores[1, [3, 9, 17]] = -np.inf  # already masked tokens
    scores[3, :30] = -np.inf  # a row with only 10 live tokens
    ids = rng.integers(0, VOCAB, size=(5, 9)).astype(np.int64)
    ids[0, -3:] = [4, 5, 4]  # repeats: n-grams (4, 5) and (5, 4) seen
    ids[0, 2:4] = [4, 5]
    ids[2, -2:] = [11, 12]
    return scores, ids


def check(ours, theirs, scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Run both on copies; assert the same scores (inf where inf) and return ours."""
    expected = theirs(torch.from_numpy(ids.copy()), torch.from_numpy(scores.copy())).numpy()
    got = ours(ids.copy(), scores.copy())
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    return got


def test_temperature(arrays):
    scores, ids = arrays
    for t in (0.3, 1.7):
        check(P.Temperature(t), T.TemperatureLogitsWarper(t), scores, ids)


def test_repetition_penalty_scales_negative_logits_up_and_positive_down(arrays):
    scores, ids = arrays
    got = check(P.RepetitionPenalty(1.3), T.RepetitionPenaltyLogitsProcessor(1.3), scores, ids)
    row, token = 0, ids[0, 0]
    expected = scores[row, token] * 1.3 if scores[row, token] < 0 else scores[row, token] / 1.3
    assert got[row, token] == pytest.approx(expected, rel=1e-6)
    penalized = np.take_along_axis(scores, ids, axis=1)
    assert (penalized < 0).any() and (penalized > 0).any()  # both branches exercised
    check(P.RepetitionPenalty(0.7), T.RepetitionPenaltyLogitsProcessor(0.7), scores, ids)


@pytest.mark.parametrize("top_k, keep", [(1, 1), (5, 1), (3, 4), (VOCAB + 10, 1), (VOCAB, 1)])
def test_top_k_including_k_beyond_vocab(arrays, top_k, keep):
    scores, ids = arrays
    got = check(P.TopK(top_k, keep), T.TopKLogitsWarper(top_k, min_tokens_to_keep=keep), scores, ids)
    if top_k == 5:
        assert (np.isfinite(got[0])).sum() == 5


@pytest.mark.parametrize("top_p, keep", [(0.1, 1), (0.5, 1), (0.9, 1), (0.5, 3), (1.0, 1), (0.0, 1)])
def test_top_p(arrays, top_p, keep):
    scores, ids = arrays
    got = check(P.TopP(top_p, keep), T.TopPLogitsWarper(top_p, min_tokens_to_keep=keep), scores, ids)
    if top_p == 1.0:
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(scores))


@pytest.mark.parametrize("top_p, keep", [(0.3, 1), (0.8, 2), (0.999, 1)])
def test_top_p_after_top_k_takes_the_sparse_path(arrays, top_p, keep):
    scores, ids = arrays
    wide = (np.random.default_rng(3).standard_normal((5, 200)) * 2).astype(np.float32)  # distinct values
    # 6 tokens left by top-k: TopP then works on the live ones only
    sparse = P.TopK(6)(ids, wide)
    assert (np.isfinite(sparse).sum(axis=1) * 4 < wide.shape[1]).all()
    check(P.TopP(top_p, keep), T.TopPLogitsWarper(top_p, min_tokens_to_keep=keep), sparse, ids)


@pytest.mark.parametrize("min_p, keep", [(0.05, 1), (0.3, 1), (0.3, 3), (1.0, 1)])
def test_min_p(arrays, min_p, keep):
    scores, ids = arrays
    check(P.MinP(min_p, keep), T.MinPLogitsWarper(min_p, min_tokens_to_keep=keep), scores, ids)


@pytest.mark.parametrize("mass, keep", [(0.2, 1), (0.9, 1), (0.5, 3)])
def test_typical(arrays, mass, keep):
    scores, ids = arrays
    check(P.Typical(mass, keep), T.TypicalLogitsWarper(mass, min_tokens_to_keep=keep), scores, ids)


@pytest.mark.parametrize("epsilon, keep", [(0.01, 1), (0.1, 1), (0.3, 3)])
def test_epsilon_and_eta_cutoff(arrays, epsilon, keep):
    scores, ids = arrays
    check(P.EpsilonCutoff(epsilon, keep), T.EpsilonLogitsWarper(epsilon, min_tokens_to_keep=keep), scores, ids)
    check(P.EtaCutoff(epsilon, keep), T.EtaLogitsWarper(epsilon, min_tokens_to_keep=keep), scores, ids)


def test_exponential_decay_length_penalty(arrays):
    scores, ids = arrays
    for start, prompt in ((2, 5), (4, 5), (1, 3)):
        check(P.ExponentialDecayLengthPenalty(start, 1.5, [2, 7], prompt),
              T.ExponentialDecayLengthPenalty((start, 1.5), [2, 7], prompt), scores, ids)


@pytest.mark.parametrize("n", [1, 2, 3, 9, 10])
def test_no_repeat_ngram_including_boundaries(arrays, n):
    scores, ids = arrays
    got = check(P.NoRepeatNGram(n), T.NoRepeatNGramLogitsProcessor(n), scores, ids)
    if n == 2:
        assert got[0, 5] == -np.inf  # row 0 ends with 4 and (4, 5) was seen
    if n == 10:
        np.testing.assert_array_equal(got, scores)  # sequence shorter than the n-gram: nothing banned


def test_no_repeat_ngram_on_short_sequences(arrays):
    scores, _ = arrays
    for length in (1, 2):
        ids = np.array([[3] * length] * 5, dtype=np.int64)
        check(P.NoRepeatNGram(2), T.NoRepeatNGramLogitsProcessor(2), scores, ids)


def test_bad_words_single_and_multi_token_and_eos_exempt(arrays):
    scores, ids = arrays
    bad = [[7], [4, 5, 4, 8], [11, 12, 13], [2], [5, 4, 6]]
    got = check(P.no_bad_words(bad, [2]), T.NoBadWordsLogitsProcessor(bad, eos_token_id=[2]), scores, ids)
    assert np.all(got[:, 7] == -np.inf)
    assert got[2, 13] == -np.inf and np.isfinite(got[1, 13])  # only row 2 ends with (11, 12)
    assert got[0, 8] == -np.inf and got[0, 6] == -np.inf  # prefixes (4, 5, 4) and (5, 4) end row 0
    np.testing.assert_array_equal(got[:, 2], scores[:, 2])  # [eos] alone is never banned


def test_sequence_bias(arrays):
    scores, ids = arrays
    bias = [[[7], 2.5], [[5, 4, 6], -1.5], [[12, 3], 4.0]]
    check(P.SequenceBias([(s, b) for s, b in bias]), T.SequenceBiasLogitsProcessor(bias), scores, ids)


def test_min_length_and_min_new_tokens(arrays):
    scores, ids = arrays
    for min_length in (5, 9, 10):
        check(P.MinLength(min_length, [2, 6]), T.MinLengthLogitsProcessor(min_length, [2, 6]), scores, ids)
    for prompt, new in ((5, 3), (5, 4), (8, 2)):
        check(P.MinNewTokens(prompt, new, [2]), T.MinNewTokensLengthLogitsProcessor(prompt, new, [2]), scores, ids)
    assert np.all(P.MinLength(10, [2])(ids, scores)[:, 2] == -np.inf)


def test_forced_bos_and_eos(arrays):
    scores, ids = arrays
    check(P.ForcedBOS(3), T.ForcedBOSTokenLogitsProcessor(3), scores, ids[:, :1])
    check(P.ForcedBOS(3), T.ForcedBOSTokenLogitsProcessor(3), scores, ids)
    got = check(P.ForcedEOS(10, [2, 5]), T.ForcedEOSTokenLogitsProcessor(10, [2, 5]), scores, ids)
    assert np.isfinite(got).sum() == 2 * len(ids)
    check(P.ForcedEOS(12, [2]), T.ForcedEOSTokenLogitsProcessor(12, [2]), scores, ids)


def test_suppress_tokens_and_at_begin(arrays):
    scores, ids = arrays
    check(P.SuppressTokens([1, 3, 39]), T.SuppressTokensLogitsProcessor([1, 3, 39]), scores, ids)
    for begin in (9, 8):
        check(P.SuppressTokensAtBegin([0, 5], begin), T.SuppressTokensAtBeginLogitsProcessor([0, 5], begin), scores, ids)


def test_inf_nan_removal_and_renormalization(arrays):
    scores, ids = arrays
    with_nan = scores.copy()
    with_nan[4, 0] = np.nan
    with_nan[4, 1] = np.inf
    check(P.InfNanRemove(), T.InfNanRemoveLogitsProcessor(), with_nan, ids)
    check(P.LogitNormalization(), T.LogitNormalization(), scores, ids)


# -- config resolution --------------------------------------------------------------------------------
def test_generation_config_json_gives_the_defaults():
    config = resolve_generation_config({"num_beams": 4, "max_length": 40, "eos_token_id": 2, "_from_model_config": True,
                                        "transformers_version": "4.57.6"}, {"eos_token_id": 9}, {}, {})
    assert (config.num_beams, config.max_length, config.eos_token_id) == (4, 40, (2,))


def test_config_json_is_the_fallback_only_without_generation_config_json():
    model_config = {"eos_token_id": [5, 6], "bos_token_id": 1, "num_beams": 3, "hidden_size": 32, "pad_token_id": None}
    config = resolve_generation_config({}, model_config, {}, {})
    assert (config.eos_token_id, config.bos_token_id, config.num_beams, config.pad_token_id) == ((5, 6), 1, 3, None)
    config = resolve_generation_config({"bos_token_id": 1}, model_config, {}, {})
    assert config.eos_token_id is None and config.num_beams == 1


def test_pipeline_defaults_model_values_and_overrides():
    pipeline = {"max_new_tokens": 256, "num_beams": 4}
    # the model's value applies only where the pipeline left the library default
    config = resolve_generation_config({"num_beams": 2, "no_repeat_ngram_size": 3}, {}, pipeline, {})
    assert (config.num_beams, config.no_repeat_ngram_size, config.max_new_tokens) == (4, 3, 256)
    # a model max_length (not 20) beats the pipeline's max_new_tokens default
    config = resolve_generation_config({"max_length": 40}, {}, pipeline, {})
    assert (config.max_new_tokens, config.max_length) == (None, 40)
    config = resolve_generation_config({"max_length": 40}, {}, pipeline, {"max_new_tokens": 7, "num_beams": 1})
    assert (config.max_new_tokens, config.num_beams) == (7, 1)
    # transformers merges the model's values at pipeline __init__ and again in generate(): a model
    # max_new_tokens equal to the pipeline default is reset by __init__ and restored by generate()
    config = resolve_generation_config({"max_new_tokens": 256, "max_length": 40}, {}, pipeline, {})
    assert (config.max_new_tokens, config.max_length) == (256, 40)
    # task_specific_params after the model, before the call; tokenizer pad fills a missing pad id
    config = resolve_generation_config({}, {}, pipeline, {"length_penalty": 0.5}, task_params={"length_penalty": 2.0,
                                       "min_length": 4}, tokenizer_pad_token_id=0)
    assert (config.length_penalty, config.min_length, config.pad_token_id) == (0.5, 4, 0)


def test_text_generation_pipeline_default_samples_and_temperature_zero_means_greedy():
    pipeline = {"max_new_tokens": 256, "do_sample": True, "temperature": 0.7}
    assert resolve_generation_config({}, {}, pipeline, {}).do_sample is True
    config = resolve_generation_config({"temperature": 0.0}, {}, {}, {})
    assert config.do_sample is False


def test_lengths_and_special_tokens():
    config = resolve_generation_config({}, {"max_position_embeddings": 30}, {}, {})
    assert generation_lengths(config, 5) == (25, 0)
    assert generation_lengths(config, 15) == (30, 0)  # default 20 new tokens, capped by the position table
    config = resolve_generation_config({}, {}, {}, {"max_length": 20, "min_new_tokens": 3})
    assert generation_lengths(config, 5) == (20, 8)  # max_length set by the call: the total length
    config = resolve_generation_config({}, {}, {}, {"max_new_tokens": 4, "max_length": 50})
    assert generation_lengths(config, 5) == (9, 0)  # max_new_tokens wins
    config = resolve_generation_config({"eos_token_id": [3, 4], "bos_token_id": 7}, {}, {}, {})
    assert special_tokens(config, is_encoder_decoder=True) == ((3, 4), 3, 7)
    with pytest.raises(InvalidOptionError, match="decoder_start_token_id"):
        special_tokens(resolve_generation_config({}, {}, {}, {}), is_encoder_decoder=True)


def test_unknown_and_unimplemented_options_raise():
    with pytest.raises(InvalidOptionError, match="Unknown generation option 'max_tokens'.*max_new_tokens"):
        resolve_generation_config({}, {}, {}, {"max_tokens": 3})
    for name, value in [("num_beam_groups", 2), ("diversity_penalty", 0.5), ("encoder_repetition_penalty", 1.5), ("constraints", [1]),
                        ("force_words_ids", [[1]]), ("output_scores", True), ("assistant_model", object()),
                        ("penalty_alpha", 0.6), ("guidance_scale", 2.0)]:
        with pytest.raises(InvalidOptionError, match=f"{name}.*not implement"):
            resolve_generation_config({}, {}, {}, {name: value})
    with pytest.raises(InvalidOptionError, match="encoder_no_repeat_ngram_size"):
        resolve_generation_config({"encoder_no_repeat_ngram_size": 3}, {}, {}, {})
    # the inactive value switches a model's unimplemented setting off
    assert resolve_generation_config({"encoder_no_repeat_ngram_size": 3}, {}, {}, {"encoder_no_repeat_ngram_size": 0}).num_beams == 1
    # settings that do not change tokens are read from files and ignored
    assert resolve_generation_config({"output_scores": True, "cache_implementation": "static"}, {}, {}, {}).num_beams == 1


@pytest.mark.parametrize("options, message", [
    ({"max_new_tokens": 0}, "max_new_tokens must be greater than 0"),
    ({"max_new_tokens": -3}, "max_new_tokens"),
    ({"num_beams": 2, "num_return_sequences": 3}, r"num_return_sequences \(3\).*num_beams \(2\)"),
    ({"num_return_sequences": 2}, "num_return_sequences=2 needs do_sample=True or num_beams > 1"),
    ({"do_sample": True, "temperature": 0.0}, "temperature.*do_sample=False"),
    ({"do_sample": True, "temperature": -1.0}, "temperature"),
    ({"do_sample": True, "top_p": 1.5}, r"top_p must be in \[0, 1\]"),
    ({"do_sample": True, "top_k": -1}, "top_k"),
    ({"do_sample": True, "min_p": 2.0}, "min_p"),
    ({"do_sample": True, "typical_p": 0.0}, "typical_p"),
    ({"do_sample": True, "epsilon_cutoff": 1.5}, "epsilon_cutoff"),
    ({"do_sample": True, "eta_cutoff": -0.1}, "eta_cutoff"),
    ({"exponential_decay_length_penalty": (3, -1.0)}, "exponential_decay_length_penalty"),
    ({"early_stopping": "sometimes"}, "early_stopping"),
    ({"repetition_penalty": 0.0}, "repetition_penalty"),
    ({"bad_words_ids": [[]]}, "bad_words_ids"),
    ({"bad_words_ids": [1, 2]}, "bad_words_ids"),
    ({"eos_token_id": "x"}, "eos_token_id"),
    ({"num_beams": 0}, "num_beams"),
    ({"stop_strings": [""]}, "stop_strings"),
    ({"seed": -1}, "seed"),
    ({"do_sample": "yes"}, "do_sample"),
])
def test_bad_values_raise(options, message):
    with pytest.raises(InvalidOptionError, match=message):
        resolve_generation_config({}, {}, {}, options)


def test_config_is_frozen_and_replace_validates():
    config = resolve_generation_config({}, {}, {}, {"num_beams": 3, "stop_strings": "END"})
    assert isinstance(config, GenerationConfig) and config.mode == "beam" and config.stop_strings == ("END",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_beams = 2  # type: ignore[misc]
    assert config.replace(do_sample=True).mode == "beam_sample"
    with pytest.raises(InvalidOptionError):
        config.replace(num_return_sequences=4)


def test_build_processors_follows_transformers_order():
    config = resolve_generation_config({}, {}, {}, {
        "repetition_penalty": 1.2, "no_repeat_ngram_size": 2, "bad_words_ids": [[3]], "min_new_tokens": 2,
        "forced_bos_token_id": 1, "suppress_tokens": [4], "do_sample": True, "temperature": 0.5, "top_p": 0.9,
        "top_k": 10, "renormalize_logits": True, "eos_token_id": 2})
    extra = P.SuppressTokens([9])
    names = [type(p).__name__ for p in P.build_processors(config, 3, 23, 5, (2,), [extra])]
    assert names == ["RepetitionPenalty", "NoRepeatNGram", "SequenceBias", "MinLength", "MinNewTokens", "ForcedBOS",
                     "SuppressTokens", "SuppressTokens", "Temperature", "TopK", "TopP", "LogitNormalization"]


# -- stopping criteria ------------------------------------------------------------------------------------
PIECES = ["st", "op", "stop", "opera", "sto", "pper", "las", "topper", "s", "to", "pped", "at", "tion", "x"]


def _ids(*pieces: str) -> list:
    return [PIECES.index(p) for p in pieces]


def _decode(ids) -> str:
    return "".join(PIECES[i] for i in ids)


@pytest.mark.parametrize("pieces, stops", [
    (("st", "op"), True), (("stop",), True), (("st", "opera"), True), (("sto", "pper"), True),
    (("las", "topper"), True), (("s", "to", "pped"), True), (("x", "s", "to", "pped"), True),
    (("stop", "at"), False), (("st", "op", "at"), False), (("st", "opera", "tion"), False), (("x", "x"), False),
])
def test_stop_strings_need_the_match_to_overlap_the_last_token(pieces, stops):
    """transformers' StopStringCriteria docstring examples for the stop string "stop"."""
    from onnxpipe.generation.stopping import StopStrings

    ids = np.array([_ids(*pieces)], dtype=np.int64)
    assert StopStrings(["stop"], _decode)(ids).tolist() == [stops]


def test_other_stopping_criteria():
    import time

    from onnxpipe.generation.stopping import EosToken, MaxLength, MaxTime, build_stopping, is_done

    ids = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    assert MaxLength(3)(ids).tolist() == [True, True] and MaxLength(4)(ids).tolist() == [False, False]
    assert EosToken([6, 9])(ids).tolist() == [False, True]
    slow = MaxTime(0.01)
    assert slow(ids).tolist() == [False, False]
    time.sleep(0.02)
    assert slow(ids).tolist() == [True, True]
    config = resolve_generation_config({}, {}, {}, {"stop_strings": ["ab"], "max_time": 5.0})
    criteria = build_stopping(config, 10, (6,), decode=lambda ids: "")
    assert [type(c).__name__ for c in criteria] == ["MaxLength", "MaxTime", "StopStrings", "EosToken"]
    assert is_done(criteria, ids).tolist() == [False, True]
    with pytest.raises(InvalidOptionError, match="stop_strings needs the tokenizer"):
        build_stopping(config, 10, (6,), decode=None)
