"""token-classification (ner) parity with transformers.pipeline on the same tiny checkpoints (all four tokenizer families)."""

from __future__ import annotations

import unicodedata
import warnings

import numpy as np
import pytest
from support.checkpoints import LONG_TEXT, VARIED_TEXTS
from support.parity import assert_same
from support.tiny_tokenizers import CORPUS

from onnxpipe import pipeline
from onnxpipe.errors import InvalidInputError, InvalidOptionError

TASK = "token-classification"
STRATEGIES = ["none", "simple", "first", "average", "max"]
# int8 on tiny random models (hidden size 32), tokens of VARIED_TEXTS + CORPUS, measured per arch:
# top-1 label agreement with transformers 0.90-0.93, median |score diff| on agreeing tokens 0.017-0.020
INT8_MIN_AGREEMENT = 0.85
INT8_MEDIAN_ATOL = 0.04
UNICODE_TEXTS = [
    "",
    "   lots   of\tspace \n\n here   ",
    "Ærø, straße, São Paulo and Kraków!",
    "Cafe\u0301 de\u0301ja\u0300 vu",  # combining accents: offsets count code points, not bytes
    "naïve 😀🎉 東京 résumé",
    "我喜欢北京。Señor Muñoz 👍👍",
    "🎉",
]
TEXTS = list(VARIED_TEXTS) + UNICODE_TEXTS
# onnxpipe warns once per call where transformers warns per token; see test_word_strategies_warn_on_word_unaware_tokenizers
pytestmark = pytest.mark.filterwarnings("ignore:Tokenizer does not support real words")


def plain(value):
    """transformers' result with numpy scalars (its scores are np.float32) as Python numbers."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


@pytest.fixture(scope="module")
def pair(models, arch):
    return models.pair(arch, TASK)


def reference(ref, inputs, **options):
    """The transformers pipeline's result, its warnings silenced, as plain Python values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return plain(ref(inputs, **options))


def test_outputs_depend_on_input(pair):
    ours, _ = pair
    results = ours(TEXTS, ignore_labels=[])
    labels = {e["entity"] for r in results for e in r}
    assert len(labels) >= 3
    assert results[0] and results[0][0]["index"] == 1 and results[0][0]["start"] == 0
    grouped = ours(list(VARIED_TEXTS[:4]), aggregation_strategy="simple", ignore_labels=[])
    assert len({tuple(e["entity_group"] for e in r) for r in grouped}) > 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_matches_transformers(pair, strategy):
    ours, ref = pair
    expected = reference(ref, TEXTS, aggregation_strategy=strategy)
    assert any(expected), "the reference found no entity: the test would prove nothing"
    result = ours(TEXTS, aggregation_strategy=strategy, batch_size=4)
    assert_same(result, expected)
    keys = ["entity", "score", "index", "word", "start", "end"] if strategy == "none" else ["entity_group", "score", "word", "start", "end"]
    assert all(list(e) == keys and isinstance(e["score"], float) for r in result for e in r)
    # a lone string gives one list of dicts, identical to its row of the batch
    single = ours(TEXTS[5], aggregation_strategy=strategy)
    assert isinstance(single, list) and all(isinstance(e, dict) for e in single)
    assert_same(single, expected[5])


@pytest.mark.parametrize("strategy", ["none", "simple"])
def test_ignore_labels(pair, strategy):
    ours, ref = pair
    everything = ours(TEXTS, aggregation_strategy=strategy, ignore_labels=[])
    key = "entity" if strategy == "none" else "entity_group"
    assert "O" in {e[key] for r in everything for e in r}
    assert_same(everything, reference(ref, TEXTS, aggregation_strategy=strategy, ignore_labels=[]))
    ignore = ["O", "PER", "I-LOC", "B-ORG"]
    filtered = ours(TEXTS, aggregation_strategy=strategy, ignore_labels=ignore)
    assert not {e[key] for r in filtered for e in r} & set(ignore)
    assert_same(filtered, reference(ref, TEXTS, aggregation_strategy=strategy, ignore_labels=ignore))


def test_unicode_offsets_point_into_the_text(pair):
    """Offsets count code points: every visible character of accented, CJK and emoji text lies in some token's
    span (combining accents may be normalized away, whitespace is not a token)."""
    ours, _ = pair
    for text, entities in zip(UNICODE_TEXTS, ours(UNICODE_TEXTS, ignore_labels=[])):
        spans = [(e["start"], e["end"]) for e in entities]
        assert spans == sorted(spans) and all(0 <= s <= e <= len(text) for s, e in spans)
        covered = {i for s, e in spans for i in range(s, e)}
        visible = {i for i, c in enumerate(text) if not c.isspace() and not unicodedata.combining(c)}
        assert visible <= covered, (text, sorted(visible - covered))
    assert ours("") == []


@pytest.mark.parametrize("strategy", ["simple", "first", "average", "max"])
def test_stride_covers_long_text_like_transformers(pair, strategy):
    ours, ref = pair
    for stride in (0, 16):
        expected = reference(ref, LONG_TEXT, aggregation_strategy=strategy, stride=stride, ignore_labels=[])
        result = ours(LONG_TEXT, aggregation_strategy=strategy, stride=stride, ignore_labels=[])
        assert_same(result, expected)
        assert result[-1]["end"] > len(LONG_TEXT) - 10  # the whole text, not only the first 64 tokens
    texts = [VARIED_TEXTS[0], LONG_TEXT, VARIED_TEXTS[5]]
    assert_same(
        ours(texts, aggregation_strategy=strategy, stride=16, batch_size=3),
        reference(ref, texts, aggregation_strategy=strategy, stride=16),
    )


def test_stride_with_a_shorter_window(pair):
    """max_length sets the window length; transformers' equivalent is the tokenizer's model_max_length."""
    ours, ref = pair
    ours_result = ours(LONG_TEXT, aggregation_strategy="simple", stride=8, max_length=24, ignore_labels=[])
    before = ref.tokenizer.model_max_length
    ref.tokenizer.model_max_length = 24
    try:
        expected = reference(ref, LONG_TEXT, aggregation_strategy="simple", stride=8, ignore_labels=[])
    finally:
        ref.tokenizer.model_max_length = before
    assert_same(ours_result, expected)


def test_long_input_without_stride_truncates_like_transformers(pair):
    ours, ref = pair
    with pytest.warns(UserWarning, match="truncated.*stride"):
        result = ours([LONG_TEXT, VARIED_TEXTS[0]], aggregation_strategy="simple", ignore_labels=[])
    assert_same(result, reference(ref, [LONG_TEXT, VARIED_TEXTS[0]], aggregation_strategy="simple", ignore_labels=[]))
    assert result[0][-1]["end"] < len(LONG_TEXT) // 2
    with pytest.raises(InvalidInputError, match="at most 64.*stride"):
        ours(LONG_TEXT, truncation=False)


def test_preprocessing_matches_transformers_tokenizer(pair):
    ours, ref = pair
    texts = TEXTS + [LONG_TEXT]
    for stride in (None, 16):
        options = ours.check_options({"stride": stride, "aggregation_strategy": "simple"}, ours.defaults)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            windows = ours.windows(texts, options)
        kwargs = {"stride": stride, "return_overflowing_tokens": True} if stride is not None else {}
        expected = ref.tokenizer(
            texts, truncation=True, return_offsets_mapping=True, return_special_tokens_mask=True, padding=True, **kwargs
        )
        mapping = expected.get("overflow_to_sample_mapping", list(range(len(texts))))
        assert [w.item for w in windows] == list(mapping)
        batch = ours.collate(windows, options).encoded
        width = batch.input_ids.shape[1]
        assert width == len(expected["input_ids"][0])
        np.testing.assert_array_equal(batch.input_ids, expected["input_ids"])
        np.testing.assert_array_equal(batch.attention_mask, expected["attention_mask"])
        if "token_type_ids" in expected:
            np.testing.assert_array_equal(batch.token_type_ids, expected["token_type_ids"])
        for row, window in enumerate(windows):
            n = len(window)
            assert [tuple(o) for o in window.encoding.offsets] == [tuple(o) for o in expected["offset_mapping"][row][:n]]
            assert list(window.encoding.special_tokens_mask) == list(expected["special_tokens_mask"][row][:n])


@pytest.mark.parametrize("grouped, ignore_subwords", [(True, True), (True, False), (False, None), (None, True)])
def test_deprecated_grouped_entities(pair, grouped, ignore_subwords):
    """transformers maps the deprecated flags onto aggregation_strategy and warns for each flag given."""
    ours, ref = pair
    options = {k: v for k, v in {"grouped_entities": grouped, "ignore_subwords": ignore_subwords}.items() if v is not None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ours(TEXTS[:6], **options)
    deprecated = [str(w.message) for w in caught if "is deprecated and will be removed in version v5.0.0" in str(w.message)]
    assert [m.split("`")[1] for m in deprecated] == list(options)
    assert_same(result, reference(ref, TEXTS[:6], **options))


def test_word_strategies_warn_on_word_unaware_tokenizers(pair, arch):
    ours, _ = pair
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours(VARIED_TEXTS[0], aggregation_strategy="first")
    fallback = [w for w in caught if "fallback heuristic" in str(w.message)]
    assert len(fallback) == (0 if arch in ("bert", "distilbert") else 1)


def test_pipeline_level_defaults_and_per_call_options(models, arch):
    import transformers

    exported = models.get(arch, TASK)
    ours = pipeline("ner", model=str(exported.onnx), dtype="fp32", aggregation_strategy="average", ignore_labels=[])
    ref = transformers.pipeline("ner", model=str(exported.checkpoint), aggregation_strategy="average", ignore_labels=[])
    assert_same(ours(TEXTS[:6]), reference(ref, TEXTS[:6]))
    assert_same(ours(TEXTS[:6], aggregation_strategy="none"), reference(ref, TEXTS[:6], aggregation_strategy="none"))
    assert "entity_group" in ours(TEXTS[0])[0]  # the call's option did not stick
    assert_same(ours(LONG_TEXT, stride=16), reference(ref, LONG_TEXT, stride=16))  # stride with the default strategy


def test_int8_within_stated_tolerance(models, arch):
    exported = models.get(arch, TASK)
    ours = pipeline(TASK, model=str(exported.onnx), dtype="int8")
    assert ours.model_path.name == "model_quantized.onnx"
    texts = list(VARIED_TEXTS) + list(CORPUS)
    got = ours(texts, ignore_labels=[], batch_size=8)
    expected = reference(models.reference(arch, TASK), texts, ignore_labels=[])
    where = lambda rows: [[(e["index"], e["word"], e["start"], e["end"]) for e in r] for r in rows]  # noqa: E731
    assert where(got) == where(expected)
    pairs = [(a, b) for ra, rb in zip(got, expected) for a, b in zip(ra, rb)]
    agreement = np.mean([a["entity"] == b["entity"] for a, b in pairs])
    diffs = [abs(a["score"] - b["score"]) for a, b in pairs if a["entity"] == b["entity"]]
    assert agreement >= INT8_MIN_AGREEMENT
    assert float(np.median(diffs)) < INT8_MEDIAN_ATOL


@pytest.mark.parametrize(
    "options, match",
    [
        ({"aggregation_strategy": "bogus"}, "aggregation_strategy must be one of none, simple"),
        ({"stride": -1, "aggregation_strategy": "simple"}, "stride must be an int >= 0"),
        ({"stride": 8}, "stride needs entities.*aggregation_strategy='simple'"),
        ({"stride": 62, "aggregation_strategy": "simple"}, "stride=62 must be smaller than the 62 text tokens.*stride <= 61"),
        ({"ignore_labels": "O"}, r"ignore_labels must be a list.*\['O'\]"),
        ({"offset_mapping": [(0, 0), (0, 2)]}, "offset_mapping.*drop the option"),
        ({"is_split_into_words": True}, "is_split_into_words.*not implemented"),
        ({"max_length": 1000}, "max_length=1000 is longer than the model takes \\(64"),
        ({"grouped_entities": "yes"}, "grouped_entities must be True, False or None"),
        ({"num_beams": 2}, "does not take option.*aggregation_strategy"),
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
    ],
)
def test_bad_options_name_the_problem(models, options, match):
    ours = pipeline(TASK, model=str(models.get("bert", TASK).onnx), dtype="fp32")
    with pytest.raises(InvalidOptionError, match=match):
        ours("Paris is nice.", **options)
    with pytest.raises(InvalidOptionError, match=match):
        pipeline(TASK, model=str(models.get("bert", TASK).onnx), dtype="fp32", **options)


@pytest.mark.parametrize("inputs", [None, 3, [], ["ok", 5], {"text": "Paris"}, [["pre", "split"]]])
def test_bad_inputs_name_the_problem(models, inputs):
    ours = pipeline(TASK, model=str(models.get("bert", TASK).onnx), dtype="fp32")
    with pytest.raises(InvalidInputError, match="string|empty list"):
        ours(inputs)
