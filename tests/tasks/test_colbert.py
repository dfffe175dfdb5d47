"""multi-vector-embedding: ColBERT token vectors in PyLate's layout (markers, query augmentation with [MASK],
skiplist, Dense projection, L2 norm) equal a torch reference of PyLate's encode on a tiny BERT; MaxSim scoring."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from support.checkpoints import LONG_TEXT, VARIED_TEXTS
from support.retrieval_folders import COLBERT_CONFIG, COLBERT_DIM, copy_folder
from support.retrieval_torch import colbert_reference, colbert_scores

from onnxpipe import list_tasks, pipeline
from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.text.colbert import maxsim

TEXTS = list(VARIED_TEXTS) + [LONG_TEXT]
ATOL = 1e-5


@pytest.fixture(scope="module")
def colbert(folders):
    return pipeline("multi-vector-embedding", model=str(folders.onnx("colbert")))


def encode(pipe, texts, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the long text is truncated
        return pipe.encode(texts, **options)


@pytest.mark.parametrize("is_query", [True, False])
def test_parity_with_torch_reference(folders, colbert, is_query):
    ours = encode(colbert, TEXTS, is_query=is_query, batch_size=4)
    theirs = colbert_reference(folders.checkpoint("colbert"), TEXTS, is_query)
    worst = 0.0
    for mine, ref in zip(ours, theirs):
        assert mine.shape == ref.shape and mine.shape[1] == COLBERT_DIM
        worst = max(worst, float(np.abs(mine - ref).max()))
        np.testing.assert_allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)
    assert worst < ATOL, worst
    if is_query:  # query augmentation: every query has query_length vectors, expansion tokens included
        assert {len(v) for v in ours} == {COLBERT_CONFIG["query_length"]}
    else:  # documents: real tokens less the skiplist (the "." of most texts), marker included
        assert len(ours[0]) < len(colbert.encoder.tokenizer.encode(TEXTS[0]).ids) + 1
    print(f"is_query={is_query}: max |diff| {worst:.2e}")


def test_maxsim(folders, colbert):
    queries = encode(colbert, TEXTS[:3], is_query=True)
    documents = encode(colbert, TEXTS[3:7])
    matrix = colbert.score(queries, documents)
    np.testing.assert_allclose(matrix, colbert_scores(queries, documents), rtol=1e-5)
    assert matrix.shape == (3, 4)
    assert colbert.score(queries[0], documents[1]) == pytest.approx(float(matrix[0, 1]), rel=1e-6)
    np.testing.assert_allclose(colbert.score(TEXTS[:3], TEXTS[3:7]), matrix, rtol=1e-5)
    assert maxsim(queries[0], queries[0][:0]) == 0.0
    with pytest.raises(ValueError, match="maxsim takes"):
        maxsim(queries[0], documents[0][:, :4])


def test_nested_lists_and_batching(colbert):
    single = colbert(TEXTS[0])
    assert isinstance(single, list) and len(single[0]) == COLBERT_DIM
    batched = encode(colbert, TEXTS[:5], batch_size=5)
    alone = encode(colbert, TEXTS[:5], batch_size=1)
    for a, b in zip(batched, alone):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_attend_to_expansion_tokens(folders, tmp_path):
    """A folder whose config attends to the [MASK] expansion tokens (as ColBERTv2 / some PyLate models do)."""
    checkpoint = copy_folder(folders.checkpoint("colbert"), tmp_path / "ckpt")
    exported = copy_folder(folders.onnx("colbert"), tmp_path / "onnx")
    for folder in (checkpoint, exported):
        path = folder / "config_sentence_transformers.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "attend_to_expansion_tokens": True}))
    pipe = pipeline("multi-vector-embedding", model=str(exported))
    ours = encode(pipe, TEXTS[:4], is_query=True)
    theirs = colbert_reference(checkpoint, TEXTS[:4], True)
    assert max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs)) < ATOL


def test_task_listed():
    from onnxpipe_export.tasks import export_task

    assert "multi-vector-embedding" in list_tasks()
    assert export_task("multi-vector-embedding").optimum_task == "feature-extraction"


def test_folder_that_is_not_colbert(folders):
    with pytest.raises(InvalidOptionError, match="not a ColBERT model"):
        pipeline("multi-vector-embedding", model=str(folders.onnx("base")))


def test_bad_input_and_options(colbert):
    with pytest.raises(InvalidInputError, match="string"):
        colbert(["a", 3])
    with pytest.raises(InvalidOptionError, match="is_query"):
        colbert("a", is_query="yes")
    with pytest.raises(InvalidOptionError, match="does not take"):
        colbert("a", pooling="mean")
