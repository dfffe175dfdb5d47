"""sentence-similarity: cosine of the folder's sentence embeddings (its Pooling, Dense, Normalize and prompts), equal
to `SentenceTransformer.similarity` (cosine); the hub's input shape; bad input; and `huggingface_hub.InferenceClient
.sentence_similarity` against a real `onnxpipe serve`."""

from __future__ import annotations

import numpy as np
import pytest
from support.checkpoints import VARIED_TEXTS
from support.st_folders import st_folders

from onnxpipe import list_tasks, pipeline
from onnxpipe.errors import InvalidInputError, InvalidOptionError

SOURCE = "Where is the nearest train station?"
SENTENCES = [t for t in VARIED_TEXTS if t != SOURCE]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return st_folders(tmp_path_factory)


def _reference_scores(ref, source, sentences, **options) -> np.ndarray:
    return ref.similarity(ref.encode([source], **options), ref.encode(sentences, **options)).numpy()[0]


@pytest.mark.parametrize("name", ["cls-dense-normalize", "max", "multi-mode"])
def test_matches_sentence_transformers_similarity(store, name):
    pipe = pipeline("sentence-similarity", model=str(store.get(name).onnx))
    ref = store.reference(name)
    scores = pipe({"source_sentence": SOURCE, "sentences": SENTENCES}, batch_size=4)
    assert isinstance(scores, list) and all(isinstance(s, float) for s in scores) and len(scores) == len(SENTENCES)
    np.testing.assert_allclose(scores, _reference_scores(ref, SOURCE, SENTENCES), atol=1e-5, rtol=0)
    assert np.ptp(scores) > 0.05  # scores depend on the sentence
    prompted = pipe({"source_sentence": SOURCE, "sentences": SENTENCES[:3]}, prompt_name="query")
    np.testing.assert_allclose(prompted, _reference_scores(ref, SOURCE, SENTENCES[:3], prompt_name="query"), atol=1e-5, rtol=0)


def test_real_minilm_similarity(store):
    pipe = pipeline("sentence-similarity", model=str(store.minilm().onnx))
    ref = store.reference("all-MiniLM-L6-v2")
    sentences = ["A man is eating a piece of bread.", "A man is riding a horse.", "The girl is carrying a baby."]
    scores = pipe({"source_sentence": "A man is eating food.", "sentences": sentences})
    np.testing.assert_allclose(scores, _reference_scores(ref, "A man is eating food.", sentences), atol=1e-5, rtol=0)
    assert abs(scores[0] - 0.7553) < 1e-3  # the published figure for this pair
    assert scores[0] == max(scores)


def test_input_forms(store):
    pipe = pipeline("sentence-similarity", model=str(store.get("max").onnx))
    one = {"source_sentence": SOURCE, "sentences": SENTENCES[:2]}
    two = {"source_sentence": SENTENCES[3], "sentences": SENTENCES[4:7]}
    single = pipe(one)
    both = pipe([one, two], batch_size=3)
    assert len(both) == 2 and len(both[1]) == 3
    np.testing.assert_allclose(both[0], single, atol=1e-6)
    np.testing.assert_allclose(pipe(**one), single, atol=1e-6)
    np.testing.assert_allclose(pipe({"source_sentence": SOURCE, "sentences": [SOURCE]}), [1.0], atol=1e-6)
    assert "sentence-similarity" in list_tasks()


def test_plain_feature_extraction_folder_gets_mean_pooling(models):
    """A folder without sentence-transformers files: mean pooling, as SentenceTransformer builds for it."""
    exported = models.get("bert", "feature-extraction")
    pipe = pipeline("sentence-similarity", model=str(exported.onnx))
    embed = pipeline("feature-extraction", model=str(exported.onnx))
    vectors = np.stack(embed([SOURCE, *SENTENCES[:3]], pooling="mean", normalize=True))
    np.testing.assert_allclose(pipe({"source_sentence": SOURCE, "sentences": SENTENCES[:3]}), vectors[1:] @ vectors[0], atol=1e-5)


@pytest.mark.parametrize(("inputs", "message"), [
    ({"sentences": ["a"]}, r"missing \['source_sentence'\]"),
    ({"source_sentence": "a", "sentences": []}, "non-empty list"),
    ({"source_sentence": "a", "sentences": "b"}, "non-empty list"),
    ({"source_sentence": "a", "sentences": ["b", 3]}, r"sentences\[1\] must be a string"),
    ({"source_sentence": None, "sentences": ["b"]}, "source_sentence must be a string"),
    ({"source_sentence": "a", "sentences": ["b"], "other": 1}, r"unknown key\(s\) \['other'\]"),
    ("just a string", "takes"),
    ([], "empty list"),
])
def test_bad_input(store, inputs, message):
    pipe = pipeline("sentence-similarity", model=str(store.get("max").onnx))
    with pytest.raises(InvalidInputError, match=message):
        pipe(inputs)


def test_bad_options(store):
    pipe = pipeline("sentence-similarity", model=str(store.get("max").onnx))
    request = {"source_sentence": "a", "sentences": ["b"]}
    with pytest.raises(InvalidOptionError, match="not a prompt of this model"):
        pipe(request, prompt_name="nope")
    with pytest.raises(InvalidOptionError, match="not both"):
        pipe(request, prompt_name="query", prompt="query: ")
    with pytest.raises(InvalidOptionError, match="does not take"):
        pipe(request, pooling="mean")


# -- served: the Hugging Face client, unchanged ---------------------------------------------------
@pytest.fixture(scope="module")
def live(store, tmp_path_factory):
    pytest.importorskip("httpx")
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    from support.live_server import ServerProcess

    folders = {"sim": store.minilm().onnx, "embed": store.get("cls-dense-normalize").onnx}
    srv = ServerProcess(folders, tmp_path_factory.mktemp("similarity") / "server.log", "--embedding-pooling", "folder")
    yield srv
    srv.stop()


def test_hf_client_sentence_similarity(store, live, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the session's HF_HUB_OFFLINE=1 refuses loopback too
    _http.reset_sessions()
    try:
        sentences = ["A man is eating a piece of bread.", "A man is riding a horse."]
        direct = pipeline("sentence-similarity", model=str(store.minilm().onnx))(
            {"source_sentence": "A man is eating food.", "sentences": sentences})
        for route in ("/hf/models/sim", "/models/sim"):
            client = huggingface_hub.InferenceClient(model=live.url + route, timeout=60)
            scores = client.sentence_similarity("A man is eating food.", other_sentences=sentences)
            np.testing.assert_allclose(scores, direct, atol=1e-5)
    finally:
        monkeypatch.undo()
        _http.reset_sessions()


def test_embeddings_route_with_folder_pooling(store, live):
    """`--embedding-pooling folder`: /v1/embeddings answers the folder's own sentence embedding (CLS, Dense to 16)."""
    from support.live_server import post

    texts = ["query: where is the station?", "a short one"]
    answer = post(live.url + "/v1/embeddings", {"model": "embed", "input": texts})
    assert answer.status_code == 200, answer.text
    vectors = np.array([row["embedding"] for row in answer.json()["data"]])
    np.testing.assert_allclose(vectors, store.reference("cls-dense-normalize").encode(texts), atol=1e-5)
