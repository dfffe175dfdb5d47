"""sentence-transformers folders read as sentence-transformers reads them: feature-extraction's pooling="folder" and
`encode()` equal `SentenceTransformer(folder).encode` (fp32, 1e-5) for every Pooling mode, with and without Dense and
Normalize, with prompts; a plain call still gives transformers' token vectors; the export carries the module files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from support.checkpoints import VARIED_TEXTS
from support.parity import assert_same
from support.st_folders import VARIANTS, st_folders

from onnxpipe import pipeline
from onnxpipe.errors import InvalidOptionError

ATOL = 1e-5
# plus 1e-5 of the value: unnormalized max-pooled vectors are not small (worst absolute difference measured: 7e-6)
RTOL = 1e-5
# max_seq_length truncates some texts, with onnxpipe's warning (sentence-transformers truncates silently)
pytestmark = pytest.mark.filterwarnings("ignore:.*truncated to fit:UserWarning")
TEXTS = [*VARIED_TEXTS, "", "Two men pushed carts through the woods while the farmer watched from the porch of his house."]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return st_folders(tmp_path_factory)


def _pair(store, name):
    return pipeline("feature-extraction", model=str(store.get(name).onnx)), store.reference(name)


def _batch(store, name) -> int:
    """Left padding shifts BERT's absolute positions, so a left-padded batch is compared one input at a time."""
    return 1 if store.get(name).variant.padding_side == "left" else 4


@pytest.mark.parametrize("name", list(VARIANTS))
def test_encode_matches_sentence_transformers(store, name):
    ours, ref = _pair(store, name)
    batch = _batch(store, name)
    got = ours.encode(TEXTS, batch_size=batch)
    want = ref.encode(TEXTS, batch_size=batch if batch == 1 else 32)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    assert np.ptp(got, axis=0).max() > 1e-2  # the vectors depend on the input
    np.testing.assert_allclose(ours.encode(TEXTS[0]), want[0], atol=ATOL, rtol=RTOL)
    one = ours(TEXTS[1], pooling="folder")  # the same through a plain call: a list of floats
    assert isinstance(one, list) and isinstance(one[0], float)
    np.testing.assert_allclose(one, want[1], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("name", [n for n, v in VARIANTS.items() if v.prompts])
@pytest.mark.parametrize("prompt", [{"prompt_name": "query"}, {"prompt_name": "passage"}, {"prompt": "Represent this: "}, {"prompt": ""}])
def test_prompts_match_sentence_transformers(store, name, prompt):
    ours, ref = _pair(store, name)
    batch = _batch(store, name)
    got = ours.encode(TEXTS[:6], batch_size=batch, **prompt)
    want = ref.encode(TEXTS[:6], batch_size=batch if batch == 1 else 32, **prompt)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    if prompt.get("prompt") != "" and not VARIANTS[name].default_prompt_name:
        assert np.abs(got - ours.encode(TEXTS[:6], batch_size=batch)).max() > 1e-3  # the prompt changed the vectors


def test_default_prompt_name_applies_only_to_folder_pooling(store):
    ours, ref = _pair(store, "lasttoken-dense")  # default_prompt_name "query", include_prompt false
    np.testing.assert_allclose(ours.encode(TEXTS[0]), ours.encode(TEXTS[0], prompt_name="query"), atol=1e-7)
    np.testing.assert_allclose(ours.encode(TEXTS[0]), ref.encode(TEXTS[0]), atol=ATOL, rtol=RTOL)
    tokens = ours(TEXTS[0], return_tensors=True)  # token level: no prompt unless asked
    assert tokens.shape[1] == len(ours.encoder.tokenize([TEXTS[0]])[0])


@pytest.mark.parametrize("name", ["max", "multi-mode"])
def test_normalize_embeddings_option(store, name):
    ours, ref = _pair(store, name)
    got = ours.encode(TEXTS[:5], normalize_embeddings=True, batch_size=4)
    np.testing.assert_allclose(got, ref.encode(TEXTS[:5], normalize_embeddings=True), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_plain_call_keeps_transformers_token_vectors(store, models):
    """transformers' feature-extraction pipeline on a sentence-transformers folder returns token vectors: so does a
    call without pooling, untruncated by max_seq_length (mean-normalize's is 12 tokens)."""
    import transformers

    exported = store.get("mean-normalize")
    ours = pipeline("feature-extraction", model=str(exported.onnx))
    ref = transformers.pipeline("feature-extraction", model=str(exported.checkpoint), device="cpu")
    long_text = TEXTS[-1]
    assert len(ours(long_text)[0]) > 12
    assert_same(ours(TEXTS[:4]), ref(TEXTS[:4]))
    assert_same(ours(long_text), ref(long_text))
    assert len(ours.encode(long_text)) == 32


def test_pooling_modes_without_folder_configuration(store):
    """pooling="max" / "lasttoken" / ... on any folder: that pooling alone, no Dense, no Normalize."""
    ours = pipeline("feature-extraction", model=str(store.get("cls-dense-normalize").onnx))
    for text in TEXTS[:3]:
        tokens = np.asarray(ours(text))[0]
        np.testing.assert_allclose(ours(text, pooling="max"), tokens.max(axis=0), atol=1e-6)
        np.testing.assert_allclose(ours(text, pooling="lasttoken"), tokens[-1], atol=1e-6)
        np.testing.assert_allclose(ours(text, pooling="cls", normalize=True), tokens[0] / np.linalg.norm(tokens[0]), atol=1e-6)
        assert len(ours(text, pooling="folder")) == 16  # the folder's Dense


def test_folder_without_modules_gets_mean_pooling(models):
    """A plain transformers folder: SentenceTransformer builds mean pooling for it, and so does pooling="folder"."""
    from sentence_transformers import SentenceTransformer

    exported = models.get("bert", "feature-extraction")
    ours = pipeline("feature-extraction", model=str(exported.onnx))
    ref = SentenceTransformer(str(exported.checkpoint), device="cpu")  # logs "Creating a new one with mean pooling"
    np.testing.assert_allclose(ours.encode(TEXTS[:4]), ref.encode(TEXTS[:4]), atol=ATOL, rtol=RTOL)


def test_export_carries_module_files(store):
    for name, variant in VARIANTS.items():
        exported = store.get(name)
        manifest = json.loads((exported.onnx / "onnxpipe.json").read_text())
        carried = set(manifest["support_files"])
        assert {"modules.json", "1_Pooling/config.json"} <= carried, name
        for index in range(len(variant.dense)):
            weights = f"{2 + index}_Dense/model.safetensors"
            assert {weights, f"{2 + index}_Dense/config.json"} <= carried and (exported.onnx / weights).is_file(), name
            if not variant.safe_serialization:  # converted from the checkpoint's pytorch_model.bin
                assert (exported.checkpoint / f"{2 + index}_Dense" / "pytorch_model.bin").is_file()
        assert ("sentence_bert_config.json" in carried) == (variant.max_seq_length is not None or not variant.legacy)


# -- bad input -----------------------------------------------------------------------------------
def test_unknown_prompt_name_lists_the_prompts(store):
    ours, _ = _pair(store, "cls-dense-normalize")
    with pytest.raises(InvalidOptionError, match=r"prompt_name='summary'.*\['document', 'passage', 'query'\]"):
        ours.encode("hi", prompt_name="summary")
    with pytest.raises(InvalidOptionError, match="not both"):
        ours.encode("hi", prompt_name="query", prompt="query: ")
    with pytest.raises(InvalidOptionError, match="prompt must be a string"):
        ours("hi", prompt=3)
    plain, _ = _pair(store, "mean-normalize")
    with pytest.raises(InvalidOptionError, match="defines no prompts"):
        plain.encode("hi", prompt_name="query")
    with pytest.raises(InvalidOptionError, match="pooling='folder'"):
        plain("hi", normalize=True)


def _copy(store, name, tmp_path):
    folder = tmp_path / name
    shutil.copytree(store.get(name).onnx, folder)
    return folder


def test_unsupported_module_refused_only_for_sentence_embeddings(store, tmp_path):
    folder = _copy(store, "max", tmp_path)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_LSTM", "type": "sentence_transformers.models.LSTM"})
    (folder / "modules.json").write_text(json.dumps(modules))
    ours = pipeline("feature-extraction", model=str(folder))
    assert np.asarray(ours("hello")).shape[0] == 1  # token vectors still come
    with pytest.raises(InvalidOptionError, match="LSTM"):
        ours("hello", pooling="folder")
    with pytest.raises(InvalidOptionError, match="LSTM"):
        pipeline("sentence-similarity", model=str(folder))


def test_dense_without_safetensors_names_the_fix(store, tmp_path):
    folder = _copy(store, "cls-dense-normalize", tmp_path)
    (folder / "2_Dense" / "model.safetensors").rename(folder / "2_Dense" / "pytorch_model.bin")
    ours = pipeline("feature-extraction", model=str(folder))
    with pytest.raises(InvalidOptionError, match="onnxpipe export"):
        ours.encode("hello")


def test_unknown_pooling_names_the_choices(store):
    ours, _ = _pair(store, "max")
    with pytest.raises(InvalidOptionError, match="folder"):
        ours("hello", pooling="average")


def test_real_minilm_equals_sentence_transformers(store):
    """Real weights: all-MiniLM-L6-v2 (mean pooling + Normalize, max_seq_length 256 from sentence_bert_config.json),
    exported for sentence-similarity and read here as feature-extraction (the same graph)."""
    exported = store.minilm()
    assert json.loads((exported.onnx / "onnxpipe.json").read_text())["task"] == "sentence-similarity"
    ours = pipeline("feature-extraction", model=str(exported.onnx))
    ref = store.reference("all-MiniLM-L6-v2")
    long_text = " ".join(TEXTS[-1] for _ in range(15))  # past 256 tokens: cut at max_seq_length, not at 512
    texts = [*TEXTS, long_text]
    got, want = ours.encode(texts, batch_size=8), ref.encode(texts)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    assert abs(float(got[0] @ got[1]) - float(want[0] @ want[1])) < 1e-5
