"""hybrid-embedding: BGE-M3's dense, sparse (lexical weights) and ColBERT outputs from one export and one forward
pass equal a torch reference of FlagEmbedding's BGEM3 on a tiny XLM-R with BGE-M3's head files (sparse_linear.pt,
colbert_linear.pt), converted to safetensors by the export."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from support.checkpoints import LONG_TEXT, VARIED_TEXTS
from support.retrieval_folders import HIDDEN
from support.retrieval_torch import bge_m3_reference

from onnxpipe import list_tasks, pipeline
from onnxpipe.errors import InvalidInputError, InvalidOptionError, MissingModelFileError
from onnxpipe.text.bge_m3 import HEAD_FILES

TEXTS = list(VARIED_TEXTS) + [LONG_TEXT]
ATOL = 1e-5


@pytest.fixture(scope="module")
def m3(folders):
    return pipeline("hybrid-embedding", model=str(folders.onnx("bge-m3")))


@pytest.fixture(scope="module")
def reference(folders):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bge_m3_reference(folders.checkpoint("bge-m3"), TEXTS)


def test_export_converts_head_files(folders):
    exported = folders.onnx("bge-m3")
    assert all((exported / name).is_file() for name in HEAD_FILES.values())
    assert not list(exported.glob("*.pt"))


def test_parity_with_flagembedding_reference(m3, reference):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the long text is truncated
        ours = m3.encode(TEXTS, return_dense=True, return_sparse=True, return_colbert_vecs=True, batch_size=4)
    dense = np.abs(ours["dense_vecs"] - reference["dense_vecs"]).max()
    assert ours["dense_vecs"].shape == (len(TEXTS), HIDDEN) and dense < ATOL
    sparse = 0.0
    for mine, theirs in zip(ours["lexical_weights"], reference["lexical_weights"]):
        assert set(mine) == set(theirs) and theirs
        sparse = max(sparse, max(abs(mine[k] - theirs[k]) for k in theirs))
    assert sparse < ATOL
    colbert = 0.0
    for mine, theirs in zip(ours["colbert_vecs"], reference["colbert_vecs"]):
        assert mine.shape == theirs.shape
        colbert = max(colbert, float(np.abs(mine - theirs).max()))
    assert colbert < ATOL
    assert len({round(float(v[0]), 4) for v in ours["dense_vecs"]}) == len(TEXTS)  # inputs decide the vectors
    print(f"bge-m3 max |diff|: dense {dense:.2e}, sparse {sparse:.2e}, colbert {colbert:.2e}")


def test_one_pass_output_shape(m3, reference):
    out = m3(TEXTS[0])
    assert set(out) == {"dense", "sparse", "colbert"}
    assert out["sparse"]["indices"] == sorted(out["sparse"]["indices"])
    assert {str(i): pytest.approx(v, abs=ATOL) for i, v in zip(out["sparse"]["indices"], out["sparse"]["values"])} == \
        reference["lexical_weights"][0]
    assert len(out["colbert"]) == len(reference["colbert_vecs"][0])
    only = m3(TEXTS[:2], return_dense=False, return_colbert=False)
    assert [set(o) for o in only] == [{"sparse"}, {"sparse"}]
    single = m3.encode(TEXTS[1], return_sparse=True)
    assert single["dense_vecs"].shape == (HIDDEN,) and isinstance(single["lexical_weights"], dict)


def test_scores(m3, reference):
    lexical, colbert = reference["lexical_weights"], reference["colbert_vecs"]
    expected = sum(w * lexical[1][k] for k, w in lexical[0].items() if k in lexical[1])
    assert m3.lexical_matching_score(lexical[0], lexical[1]) == pytest.approx(expected)
    q, d = colbert[0], colbert[1]
    assert m3.colbert_score(q, d) == pytest.approx(float((q @ d.T).max(axis=1).sum() / len(q)), rel=1e-6)


def test_task_listed():
    from onnxpipe_export.tasks import export_task

    assert "hybrid-embedding" in list_tasks()
    assert export_task("hybrid-embedding").optimum_task == "feature-extraction"


def test_folder_without_heads(folders, tmp_path):
    plain = shutil.copytree(folders.onnx("bge-m3"), tmp_path / "no-heads")
    (plain / HEAD_FILES["colbert"]).unlink()
    with pytest.raises(MissingModelFileError, match="colbert_linear.safetensors.*--task hybrid-embedding"):
        pipeline("hybrid-embedding", model=str(plain))


def test_bad_input_and_options(m3):
    with pytest.raises(InvalidInputError, match="string"):
        m3(None)
    with pytest.raises(InvalidOptionError, match="at least one output"):
        m3("a", return_dense=False, return_sparse=False, return_colbert=False)
    with pytest.raises(InvalidOptionError, match="return_sparse"):
        m3("a", return_sparse=1)
