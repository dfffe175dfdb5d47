"""fill-mask parity with transformers.pipeline on the same tiny masked-LM checkpoints (all four tokenizer families)."""

from __future__ import annotations

import json
import re
import shutil
import warnings

import numpy as np
import pytest
from support.checkpoints import LONG_TEXT, VARIED_TEXTS
from support.parity import assert_same
from support.tiny_tokenizers import CORPUS

from onnxpipe import pipeline
from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.text.tokenizer import clean_up_tokenization

# int8 on hidden-size-32 random models, measured over 72 texts (VARIED_TEXTS + CORPUS, middle word masked):
# top-1 agreement 0.83 (roberta) - 0.93 (bert), median |top-1 score diff| 0.014 - 0.023 (max 0.21),
# top-5 overlap 0.86 - 0.91. Accuracy on real weights would need a real masked LM, which is not reachable here.
INT8_MIN_TOP1_AGREEMENT = 0.75
INT8_MEDIAN_SCORE_ATOL = 0.05
INT8_MIN_TOP5_OVERLAP = 0.8

# English, accents, CJK, emoji, digits, whitespace runs, the mask alone, and the patterns clean_up_tokenization fixes
MASKED = (
    "I {mask} this movie, it was wonderful!",
    "The capital of France is {mask}.",
    "Where is the nearest {mask} station?",
    "We met at a café in {mask}; what a naïve résumé.",
    "今日は{mask}の良い天気です。",
    "我喜欢这部{mask}！",
    "I love this {mask} 😀 👍",
    "Order #4521 costs {mask} on 2024-03-15.",
    "{mask}",
    "Wait... {mask}?! Really?!",
    "  lots   of \t spaces \n {mask}  here  ",
    "He said: \"it 's {mask} , isn't it ?\" and we 're done .",
)


def masked(template: str, mask: str) -> str:
    return template.replace("{mask}", mask)


@pytest.fixture(scope="module")
def pair(models, arch):
    return models.pair(arch, "fill-mask")


@pytest.fixture(scope="module")
def texts(pair):
    ours, _ = pair
    return [masked(t, ours.mask_token) for t in MASKED]


@pytest.fixture(scope="module")
def reference_default(pair, texts):
    """transformers' default output (top_k 5) for every text, computed once."""
    _, ref = pair
    return ref(texts)


def test_mask_token_comes_from_the_tokenizer_files(pair, arch):
    ours, ref = pair
    assert ours.mask_token == ref.tokenizer.mask_token == ("[MASK]" if arch in ("bert", "distilbert") else "<mask>")
    assert ours.mask_id == ref.tokenizer.mask_token_id


def test_tokenization_matches_transformers(pair, texts):
    ours, ref = pair
    expected = ref.tokenizer(texts, return_special_tokens_mask=True)
    for i, encoding in enumerate(ours.encoder.tokenize(texts)):
        assert encoding.ids == expected["input_ids"][i]
        assert encoding.attention_mask == expected["attention_mask"][i]
        assert encoding.special_tokens_mask == expected["special_tokens_mask"][i]
        assert ours.mask_id in encoding.ids


def test_decode_matches_transformers(pair, texts):
    """token_str is decode([id]) for every id of the vocabulary; sequences decode with and without specials
    (WordPiece ## joining, byte-level spaces, SentencePiece ▁, clean_up_tokenization_spaces)."""
    ours, ref = pair
    tok = ref.tokenizer
    for token_id in range(len(tok)):
        assert ours.encoder.decode([token_id]) == tok.decode([token_id]), token_id
    for ids in tok(texts + list(VARIED_TEXTS))["input_ids"]:
        for skip in (True, False):
            assert ours.encoder.decode(ids, skip_special_tokens=skip) == tok.decode(ids, skip_special_tokens=skip)


def test_clean_up_tokenization_matches_transformers():
    from transformers import PreTrainedTokenizerBase

    text = "Hi , you . Why ? No ! it ' s isn't he n't I 'm it 's we 've you 're ok"
    assert clean_up_tokenization(text) == PreTrainedTokenizerBase.clean_up_tokenization(text)
    assert clean_up_tokenization(text) != text


def test_default_top_k_and_list_input(pair, texts, reference_default):
    ours, _ = pair
    result = ours(texts)
    assert_same(result, reference_default)
    assert all(len(r) == 5 for r in result)
    assert all(r[0]["score"] >= r[1]["score"] for r in result)


def test_predictions_depend_on_input(pair, texts):
    ours, _ = pair
    top1 = [r[0]["token"] for r in ours(texts, top_k=1)]
    assert len(set(top1)) >= 3, top1


@pytest.mark.parametrize("top_k", [1, 3, None])
def test_top_k_single_string(pair, texts, top_k):
    ours, ref = pair
    for text in texts[:4] + texts[-2:]:
        result = ours(text, top_k=top_k)
        assert_same(result, ref(text, top_k=top_k))
        assert len(result) == (top_k or 5)
        sequence = result[0]["sequence"]
        assert ours.mask_token not in sequence  # one mask: special tokens are skipped


def test_batching_and_one_item_list(pair, texts, reference_default):
    ours, ref = pair
    assert_same(ours(texts, batch_size=5), reference_default)
    assert_same(ours(texts, batch_size=len(texts)), reference_default)
    assert_same(ours(texts[:1]), ref(texts[:1]))  # transformers unwraps a one-item list
    assert_same(ours(texts[:1]), reference_default[0])


def test_several_masks_nested_output(pair):
    ours, ref = pair
    mask = ours.mask_token
    texts = [f"The {mask} of France is {mask}.", f"{mask} {mask}{mask} 東京", f"I {mask} this {mask} 😀 so much"]
    for text in texts:
        result = ours(text, top_k=2)
        assert_same(result, ref(text, top_k=2))
        assert len(result) == text.count(mask) and all(len(per_mask) == 2 for per_mask in result)
        # several masks: special tokens (the other masks) stay in `sequence`
        for per_mask in result:
            for p in per_mask:
                assert p["sequence"].count(mask) == text.count(mask) - 1 + (p["token"] == ours.mask_id)
    assert_same(ours(texts + [f"one {mask}"], batch_size=2), ref(texts + [f"one {mask}"]))


def test_targets(pair, arch):
    """In-vocabulary targets are used as they are; others are tokenized and their first piece used, with
    transformers' warning; a target that tokenizes to nothing is ignored with a warning."""
    ours, ref = pair
    text = f"The capital of France is {ours.mask_token}."
    vocab = ref.tokenizer.get_vocab()
    single = [t for t in ("the", "Ġthe", "▁the") if t in vocab]
    multi = "restaurant"
    unknown = ["Ω", "xylophone"]
    assert single and multi not in vocab and len(ref.tokenizer.tokenize(multi)) > 1
    targets = single + [multi] + unknown
    with pytest.warns(UserWarning) as record:
        result = ours(text, targets=targets, top_k=10)
    messages = [str(w.message) for w in record]
    for target in [multi] + unknown:
        assert any(f"`{target}` does not exist in the model vocabulary. Replacing with" in m for m in messages)
    assert not any(f"`{target}`" in m for target in single for m in messages)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same(result, ref(text, targets=targets, top_k=10))
        expected_ids = set(ref.get_target_ids(targets).tolist())
    assert {p["token"] for p in result} == expected_ids  # top_k capped at the number of distinct targets
    assert len(result) == len(expected_ids) < 10
    # one string target, top_k 1
    assert_same(ours(text, targets=single[0], top_k=1), ref(text, targets=single[0], top_k=1))
    assert ours(text, targets=single[0])[0]["token"] == vocab[single[0]]
    # a target that tokenizes to nothing is dropped with a warning; nothing usable at all is an error
    with pytest.warns(UserWarning, match="ignoring it"):
        assert {p["token"] for p in ours(text, targets=["", single[0]])} == {vocab[single[0]]}
    with pytest.warns(UserWarning, match="ignoring it"), pytest.raises(InvalidOptionError, match="targets"):
        ours(text, targets=[""])


def test_targets_with_several_masks(pair):
    ours, ref = pair
    mask = ours.mask_token
    text = f"{mask} is the capital of {mask}."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same(ours(text, targets=["paris", "france", "the"]), ref(text, targets=["paris", "france", "the"]))


def test_long_input_truncates_with_warning(pair):
    ours, ref = pair
    text = f"The {ours.mask_token} was good. {LONG_TEXT}"
    with pytest.warns(UserWarning, match="truncated"):
        result = ours(text)
    assert_same(result, ref(text, tokenizer_kwargs={"truncation": True}))
    with pytest.warns(UserWarning, match="truncated"):
        assert_same(ours(text, tokenizer_kwargs={"truncation": True}), result)
    kwargs = {"truncation": True, "max_length": 16}
    with pytest.warns(UserWarning, match="truncated"):
        assert_same(ours(text, tokenizer_kwargs=kwargs), ref(text, tokenizer_kwargs=kwargs))
    with pytest.raises(InvalidInputError, match="truncation=True"):
        ours(text, tokenizer_kwargs={"truncation": False})
    # the mask past the limit: transformers says "No mask_token"; onnxpipe says truncation cut it off
    late = f"{LONG_TEXT} {ours.mask_token}."
    with pytest.warns(UserWarning, match="truncated"), pytest.raises(InvalidInputError, match="cut off by truncation"):
        ours(late)


def test_no_mask_is_an_error_naming_the_mask_token(pair):
    ours, ref = pair
    mask = re.escape(ours.mask_token)
    with pytest.raises(InvalidInputError, match=f"No mask_token \\({mask}\\).*Write {mask}"):
        ours("There is no mask here.")
    with pytest.raises(InvalidInputError, match="no mask here"):
        ours([f"a {ours.mask_token}", "no mask here"])
    with pytest.raises(Exception, match="No mask_token"):
        ref("There is no mask here.")
    other = "<mask>" if ours.mask_token == "[MASK]" else "[MASK]"
    with pytest.raises(InvalidInputError, match=mask):
        ours(f"The wrong {other} token.")


@pytest.mark.parametrize(
    "inputs, match",
    [(3, "int"), (None, "NoneType"), ([], "empty list"), (["ok {m}", 3], "int"),
     ({"text": "a {m}"}, "dict"), (b"bytes {m}", "bytes")],
)
def test_wrong_input_types(pair, inputs, match):
    ours, _ = pair
    if isinstance(inputs, list):
        inputs = [i.format(m=ours.mask_token) if isinstance(i, str) else i for i in inputs]
    with pytest.raises(InvalidInputError, match=match):
        ours(inputs)


@pytest.mark.parametrize(
    "options, match",
    [({"top_k": 0}, "top_k"), ({"top_k": -2}, "top_k"), ({"top_k": "3"}, "top_k"), ({"top_k": True}, "top_k"),
     ({"targets": 3}, "targets"), ({"targets": ["a", 1]}, "targets"), ({"targets": []}, "targets"),
     ({"tokenizer_kwargs": {"padding": True}}, "padding"), ({"tokenizer_kwargs": "truncation"}, "dict"),
     ({"tokenizer_kwargs": {"truncation": "yes"}}, "truncation"), ({"num_workers": 2}, "num_workers"),
     ({"batch_size": 0}, "batch_size")],
)
def test_bad_options(pair, options, match):
    ours, _ = pair
    with pytest.raises(InvalidOptionError, match=match):
        ours(f"a {ours.mask_token}", **options)


def test_pipeline_level_defaults_and_per_call_options(models, arch, pair, texts):
    import transformers

    exported = models.get(arch, "fill-mask")
    ours = pipeline("fill-mask", model=str(exported.onnx), dtype="fp32", top_k=2)
    ref = transformers.pipeline("fill-mask", model=str(exported.checkpoint), top_k=2)
    assert_same(ours(texts[:3]), ref(texts[:3]))
    assert_same(ours(texts[0], top_k=None), ref(texts[0], top_k=None))  # None: the pipeline's default
    assert len(ours(texts[0], top_k=4)) == 4 and len(ours(texts[0])) == 2  # per-call options do not stick


def test_truncation_names_and_top_k_beyond_the_vocabulary(pair, texts):
    """transformers' truncation strategy names are accepted; a top_k larger than the vocabulary returns the
    whole vocabulary (transformers fails inside torch.topk there)."""
    ours, ref = pair
    assert_same(ours(texts[0], tokenizer_kwargs={"truncation": "longest_first"}), ref(texts[0]))
    everything = ours(texts[0], top_k=10_000)
    assert len(everything) == len(ref.tokenizer) == ours.folder.config["vocab_size"]
    assert abs(sum(p["score"] for p in everything) - 1) < 1e-4
    # every token of the vocabulary as the fill (pad and special tokens included): same sequences as transformers
    assert_same(everything, ref(texts[0], top_k=len(ref.tokenizer)))


def test_int8_within_stated_tolerance(models, arch):
    exported = models.get(arch, "fill-mask")
    ours = pipeline("fill-mask", model=str(exported.onnx), dtype="int8")
    assert ours.model_path.name == "model_quantized.onnx"
    texts = []
    for text in list(VARIED_TEXTS) + list(CORPUS):
        words = text.split()
        words[len(words) // 2] = ours.mask_token
        texts.append(" ".join(words))
    got, want = ours(texts), models.reference(arch, "fill-mask")(texts, batch_size=8)
    assert [len(r) for r in got] == [len(r) for r in want] == [5] * len(texts)
    assert [sorted(p) for r in got for p in r] == [sorted(p) for r in want for p in r]
    agreement = np.mean([a[0]["token"] == b[0]["token"] for a, b in zip(got, want)])
    diffs = [abs(a[0]["score"] - b[0]["score"]) for a, b in zip(got, want)]
    overlap = np.mean([len({p["token"] for p in a} & {p["token"] for p in b}) / 5 for a, b in zip(got, want)])
    assert agreement >= INT8_MIN_TOP1_AGREEMENT
    assert float(np.median(diffs)) < INT8_MEDIAN_SCORE_ATOL
    assert overlap >= INT8_MIN_TOP5_OVERLAP


def test_mask_token_found_in_tokenizer_json_or_refused(models, tmp_path):
    """Without mask_token in tokenizer_config.json / special_tokens_map.json the special added token of
    tokenizer.json is used; a tokenizer with no mask token at all is refused when the pipeline is built."""
    folder = tmp_path / "bert"
    shutil.copytree(models.get("bert", "fill-mask").onnx, folder)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        config = json.loads((folder / name).read_text())
        config.pop("mask_token")
        (folder / name).write_text(json.dumps(config))
    (folder / "onnxpipe.json").unlink()  # its sha256 of the edited files no longer holds
    ours = pipeline("fill-mask", model=str(folder), dtype="fp32")
    assert ours.mask_token == "[MASK]" and len(ours("paris is the [MASK] of france.")) == 5
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    for added in tokenizer["added_tokens"]:
        added["special"] = added["special"] and added["content"] != "[MASK]"
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(InvalidOptionError, match="mask token"):
        pipeline("fill-mask", model=str(folder), dtype="fp32")
