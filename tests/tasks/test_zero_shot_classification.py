"""zero-shot-classification parity with transformers.pipeline on tiny NLI checkpoints (BERT, DistilBERT, RoBERTa, XLM-R)."""

from __future__ import annotations

import numpy as np
import pytest
from support.checkpoints import LONG_TEXT, NLI_LABELS, VARIED_TEXTS
from support.parity import assert_same
from support.tiny_tokenizers import CORPUS

from onnxpipe import pipeline
from onnxpipe.errors import InvalidInputError, InvalidOptionError

TASK = "zero-shot-classification"
LABELS = ["sports", "politics", "food", "travel"]
MANY_LABELS = ["sports", "politics", "food", "travel", "weather", "music", "science", "money", "art", "health",
               "food", "café & résumé", "日本", "😀", "Food"]  # ties (a duplicate; "Food" = "food" once lowercased by WordPiece): transformers order them by reversed argsort
TEXTS = list(VARIED_TEXTS) + ["  spaced \t out\n\n text  ", "Ærø, straße, São Paulo."]
# int8 on these tiny NLI models (hidden size 32; LABELS over the 72 texts below), measured per arch:
# single-label median max-score diff 0.042-0.058, top-1 agreement 0.82-0.93;
# multi-label median 0.062-0.079, top-1 agreement 0.78-0.93 (chance is 0.25). Asserted with some margin:
INT8_MEDIAN_ATOL = {False: 0.08, True: 0.1}
INT8_MIN_AGREEMENT = 0.7


def _nli(models, arch, labels=NLI_LABELS):
    exported = models.get(arch, TASK, labels=labels)
    return pipeline(TASK, model=str(exported.onnx), dtype="fp32"), models.reference(arch, TASK, labels=labels)


@pytest.fixture(scope="module")
def pair(models, arch):
    return _nli(models, arch)


def test_scores_depend_on_input(pair):
    ours, _ = pair
    results = ours(TEXTS, candidate_labels=LABELS)
    assert len({r["labels"][0] for r in results}) >= 3
    assert len({tuple(r["scores"]) for r in results}) == len(TEXTS)
    assert all(abs(sum(r["scores"]) - 1) < 1e-5 for r in results)


def test_labels_as_list_or_comma_string(pair):
    ours, ref = pair
    expected = ref(TEXTS[0], candidate_labels=LABELS)
    assert_same(ours(TEXTS[0], candidate_labels=LABELS), expected)
    assert_same(ours(TEXTS[0], candidate_labels=" sports,politics , food,, travel,"), expected)
    assert_same(ours(TEXTS[0], LABELS), expected)  # positional, as transformers allows
    assert ours(TEXTS[0], candidate_labels=LABELS)["sequence"] == TEXTS[0]


@pytest.mark.parametrize("multi_label", [False, True])
def test_batch_parity_unicode_and_multi_label(pair, multi_label):
    ours, ref = pair
    expected = ref(TEXTS, candidate_labels=LABELS, multi_label=multi_label)
    assert_same(ours(TEXTS, candidate_labels=LABELS, multi_label=multi_label), expected)
    assert_same(ours(TEXTS, candidate_labels=LABELS, multi_label=multi_label, batch_size=7), expected)
    sums = [sum(r["scores"]) for r in expected]
    assert (max(abs(s - 1) for s in sums) > 0.05) == multi_label  # multi-label scores are independent


def test_one_label_uses_entailment_vs_contradiction(pair):
    ours, ref = pair
    texts = TEXTS[:6]
    one = ours(texts, candidate_labels=["travel"])
    assert_same(one, ref(texts, candidate_labels=["travel"]))
    assert_same(one, ours(texts, candidate_labels=["travel"], multi_label=True))
    assert len({r["scores"][0] for r in one}) == len(texts)


def test_many_labels_and_duplicates(pair):
    ours, ref = pair
    texts = [TEXTS[0], TEXTS[6], TEXTS[8]]
    ours_results = ours(texts, candidate_labels=MANY_LABELS, batch_size=16)
    assert_same(ours_results, ref(texts, candidate_labels=MANY_LABELS))
    assert sorted(ours_results[0]["labels"]) == sorted(MANY_LABELS)


def test_custom_template(pair):
    ours, ref = pair
    template = "This text is about {0}; 話題は{0}です。"
    texts = TEXTS[:4]
    custom = ours(texts, candidate_labels=LABELS, hypothesis_template=template)
    assert_same(custom, ref(texts, candidate_labels=LABELS, hypothesis_template=template))
    assert custom[0]["scores"] != ours(texts[0], candidate_labels=LABELS)["scores"]


def test_long_sequence_truncates_only_the_premise(pair):
    ours, ref = pair
    texts = [LONG_TEXT, TEXTS[1]]
    with pytest.warns(UserWarning, match="truncated"):
        result = ours(texts, candidate_labels=LABELS, batch_size=3)
    assert_same(result, ref(texts, candidate_labels=LABELS))
    with pytest.raises(InvalidInputError, match="truncation=True"):
        ours(LONG_TEXT, candidate_labels=LABELS, truncation=False)


def test_tokenization_matches_transformers(pair):
    """Pairs tokenized with ONLY_FIRST truncation: ids, masks and token types equal transformers' tokenizer."""
    ours, ref = pair
    pairs = [(text, f"This example is {label}.") for text in (TEXTS[5], TEXTS[7], LONG_TEXT) for label in ("日本", "food")]
    options = ours.check_options({}, ours.defaults)
    with pytest.warns(UserWarning):
        encoded = ours.collate(ours.prepare(pairs, options), options)
    expected = ref.tokenizer([list(p) for p in pairs], padding=True, truncation="only_first", return_tensors="np")
    np.testing.assert_array_equal(encoded.input_ids, expected["input_ids"])
    np.testing.assert_array_equal(encoded.attention_mask, expected["attention_mask"])
    if "token_type_ids" in expected:
        np.testing.assert_array_equal(encoded.token_type_ids, expected["token_type_ids"])
    assert encoded.input_ids.shape[1] == 64  # the long premise was cut to the model's limit, the hypothesis kept


def test_deprecated_multi_class(pair):
    ours, ref = pair
    with pytest.warns(UserWarning, match="multi_label"):
        result = ours(TEXTS[2], candidate_labels=LABELS, multi_class=True)
    assert_same(result, ref(TEXTS[2], candidate_labels=LABELS, multi_class=True))
    assert_same(result, ours(TEXTS[2], candidate_labels=LABELS, multi_label=True))


def test_pipeline_level_defaults_do_not_leak(models):
    import transformers

    exported = models.get("bert", TASK, labels=NLI_LABELS)
    options = dict(candidate_labels="food, travel, music", multi_label=True, hypothesis_template="It is about {}.")
    ours = pipeline(TASK, model=str(exported.onnx), dtype="fp32", **options)
    ref = transformers.pipeline(TASK, model=str(exported.checkpoint), **options)
    assert_same(ours(TEXTS[:3]), ref(TEXTS[:3]))
    assert_same(ours(TEXTS[3], multi_label=False), ref(TEXTS[3], multi_label=False))
    assert_same(ours(TEXTS[3], candidate_labels=LABELS), ref(TEXTS[3], candidate_labels=LABELS))
    assert_same(ours(TEXTS[:3]), ref(TEXTS[:3]))  # the per-call options did not stick


@pytest.mark.parametrize(
    "labels", [("CONTRADICTION", "NEUTRAL", "ENTAILMENT"), ("Entailment", "Neutral", "Contradiction")]
)
def test_entailment_label_found_case_insensitively(models, labels):
    """transformers finds the entailment id by label.lower().startswith('entail'); with entailment at id 0 it takes
    the LAST class as contradiction."""
    ours, ref = _nli(models, "bert", labels)
    assert ours.entailment_id == labels.index(next(label for label in labels if label.lower().startswith("entail")))
    for multi_label in (False, True):
        expected = ref(TEXTS[:4], candidate_labels=LABELS, multi_label=multi_label)
        assert_same(ours(TEXTS[:4], candidate_labels=LABELS, multi_label=multi_label), expected)


def test_missing_entailment_label_is_an_error(models):
    exported = models.get("bert", TASK, labels=("contradiction", "neutral", "agreement"))
    with pytest.raises(InvalidOptionError, match=r"entail.*\['agreement', 'contradiction', 'neutral'\]"):
        pipeline(TASK, model=str(exported.onnx), dtype="fp32")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"candidate_labels": []}, "at least one label"),
        ({"candidate_labels": ""}, "at least one label"),
        ({"candidate_labels": " , ,"}, "at least one label"),
        ({"candidate_labels": ["a", 3]}, "list of strings"),
        ({"candidate_labels": None}, "needs candidate_labels"),
        ({}, "needs candidate_labels"),
        ({"candidate_labels": ["a"], "hypothesis_template": "No slot here."}, "formatting syntax such as {}"),
        ({"candidate_labels": ["a"], "hypothesis_template": "About {topic}."}, "KeyError"),
        ({"candidate_labels": ["a"], "hypothesis_template": "{} and {}"}, "IndexError"),
        ({"candidate_labels": ["a"], "hypothesis_template": "{"}, "cannot be formatted"),
        ({"candidate_labels": ["a"], "hypothesis_template": 3}, "hypothesis_template must be a string"),
        ({"candidate_labels": ["a"], "multi_label": "yes"}, "multi_label must be True or False"),
        ({"candidate_labels": ["a"], "top_k": 2}, "does not take option"),
        ({"candidate_labels": ["a"], "batch_size": 0}, "batch_size"),
    ],
)
def test_bad_options(pair, kwargs, match):
    ours, _ = pair
    with pytest.raises(InvalidOptionError, match=match):
        ours("Some text.", **kwargs)


def test_bad_options_are_value_errors_as_in_transformers(pair):
    ours, ref = pair
    for kwargs in ({"candidate_labels": []}, {"candidate_labels": ["a"], "hypothesis_template": "No slot."}):
        with pytest.raises(ValueError):
            ref("Some text.", **kwargs)
        with pytest.raises(ValueError):
            ours("Some text.", **kwargs)
    with pytest.raises(InvalidOptionError, match="extra arguments"):
        ours("Some text.", LABELS, "This is {}.")


@pytest.mark.parametrize("inputs", [3, None, b"bytes", {"text": "a"}, ["ok", 5], "", ["ok", ""], []])
def test_bad_inputs(pair, inputs):
    ours, _ = pair
    with pytest.raises(InvalidInputError, match="string|empty list"):
        ours(inputs, candidate_labels=LABELS)


def test_hypothesis_longer_than_the_model_is_an_error(pair):
    ours, _ = pair
    with pytest.raises(InvalidInputError, match="shorten the candidate label"):
        ours(TEXTS[0], candidate_labels=["word " * 80])


def test_int8_within_stated_tolerance(models, arch):
    exported = models.get(arch, TASK, labels=NLI_LABELS)
    ours = pipeline(TASK, model=str(exported.onnx), dtype="int8")
    assert ours.model_path.name == "model_quantized.onnx"
    texts = list(VARIED_TEXTS) + list(CORPUS)
    ref = models.reference(arch, TASK, labels=NLI_LABELS)
    for multi_label in (False, True):
        mine = ours(texts, candidate_labels=LABELS, multi_label=multi_label, batch_size=16)
        theirs = ref(texts, candidate_labels=LABELS, multi_label=multi_label, batch_size=16)
        assert [r["sequence"] for r in mine] == texts and all(sorted(r["labels"]) == sorted(LABELS) for r in mine)
        by_label = [(dict(zip(a["labels"], a["scores"])), dict(zip(b["labels"], b["scores"]))) for a, b in zip(mine, theirs)]
        diffs = [max(abs(a[k] - b[k]) for k in LABELS) for a, b in by_label]
        assert float(np.median(diffs)) < INT8_MEDIAN_ATOL[multi_label]
        agreement = np.mean([a["labels"][0] == b["labels"][0] for a, b in zip(mine, theirs)])
        assert agreement >= INT8_MIN_AGREEMENT
