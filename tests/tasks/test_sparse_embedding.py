"""sparse-embedding: SPLADE vectors from a fill-mask graph equal sentence-transformers' SparseEncoder.encode on tiny
SparseEncoder folders (max/relu and sum/log1p_relu pooling, prompts, max_active_dims), in the {indices, values} form;
a model without a masked-LM head is refused with the fix."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from support.checkpoints import LONG_TEXT, VARIED_TEXTS

from onnxpipe import list_tasks, pipeline
from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.text.splade import dense_of

TEXTS = list(VARIED_TEXTS) + [LONG_TEXT]


@pytest.fixture(scope="module")
def splade(folders):
    return pipeline("sparse-embedding", model=str(folders.onnx("splade")))


def reference(folders, name: str):
    from sentence_transformers import SparseEncoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SparseEncoder(str(folders.checkpoint(name)), device="cpu")


def st_encode(model, texts, **kwargs) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.encode(texts, convert_to_sparse_tensor=False, convert_to_tensor=True, **kwargs).numpy()


def assert_close(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Within 1e-5 of the vector's scale (its largest value, at least 1): ONNX and torch logits differ by ~1e-5 on
    this tiny model, whose vectors reach about 2.4 (measured: max |diff| 1.5e-5, 6.4e-6 of the vector's max)."""
    scale = np.maximum(np.abs(theirs).max(axis=-1, keepdims=True), 1.0)
    assert (np.abs(ours - theirs) <= 1e-5 * scale).all(), float(np.abs(ours - theirs).max())
    assert ((ours != 0) == (theirs != 0)).mean() > 0.999  # the same active dimensions (a value at 0 may flip)


@pytest.mark.parametrize("name", ["splade", "splade-sum"])
def test_parity_with_sparse_encoder(folders, name):
    model = reference(folders, name)
    pipe = pipeline("sparse-embedding", model=str(folders.onnx(name)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the long text is truncated
        ours = pipe.encode(TEXTS, batch_size=4)
    theirs = st_encode(model, TEXTS, batch_size=4)
    assert ours.shape == theirs.shape == (len(TEXTS), model.get_embedding_dimension())
    assert_close(ours, theirs)
    assert len({tuple(np.flatnonzero(v)) for v in ours}) == len(TEXTS)  # inputs decide the vector
    print(f"{name}: max |diff| {np.abs(ours - theirs).max():.2e}, max value {theirs.max():.2f}")


def test_prompts_and_max_active_dims(folders, splade):
    model = reference(folders, "splade")
    texts = TEXTS[:6]
    assert_close(splade.encode(texts, prompt_name="query"), st_encode(model, texts, prompt_name="query"))
    assert_close(splade.encode(texts, prompt="search: "), st_encode(model, texts, prompt="search: "))
    ours = splade.encode(texts, max_active_dims=8)
    theirs = st_encode(model, texts, max_active_dims=8)
    assert ((ours != 0).sum(axis=1) == 8).all()
    assert_close(ours, theirs)


def test_indices_and_values(splade):
    dense = splade.encode(TEXTS[0])
    sparse = splade(TEXTS[0])
    assert set(sparse) == {"indices", "values"}
    assert sparse["indices"] == sorted(sparse["indices"]) and all(v > 0 for v in sparse["values"])
    np.testing.assert_array_equal(dense_of(sparse, dense.size), dense)
    pruned = splade(TEXTS[:2], top_k=5, return_tokens=True)
    assert [len(p["indices"]) for p in pruned] == [5, 5]
    for item in pruned:
        best = np.sort(splade.encode(TEXTS[pruned.index(item)]))[-5:]
        np.testing.assert_allclose(sorted(item["values"]), best, rtol=1e-6)
        assert item["tokens"] == [splade.encoder.tokenizer.id_to_token(i) for i in item["indices"]]
    np.testing.assert_allclose(splade.encode(TEXTS[:3], batch_size=3), splade.encode(TEXTS[:3]), atol=1e-5)


def test_task_listed():
    from onnxpipe_export.tasks import export_task

    assert "sparse-embedding" in list_tasks()
    assert export_task("sparse-embedding").optimum_task == "fill-mask"


def test_model_without_masked_lm_head(folders):
    exported = folders.onnx("base")  # a feature-extraction export: last_hidden_state, no logits
    with pytest.raises(InvalidOptionError, match="masked-lm head"):
        pipeline("sparse-embedding", model=str(exported))
    plain = folders.root / "no-manifest"  # the same graph without its manifest: read from the outputs
    if not plain.exists():
        import shutil

        shutil.copytree(exported, plain)
        (plain / "onnxpipe.json").unlink()
    with pytest.raises(InvalidOptionError, match="masked-lm head|masked-LM head"):
        pipeline("sparse-embedding", model=str(plain))


def test_bad_input_and_options(splade):
    with pytest.raises(InvalidInputError, match="string"):
        splade(3)
    with pytest.raises(InvalidInputError, match="empty list"):
        splade([])
    with pytest.raises(InvalidOptionError, match="top_k"):
        splade("a", top_k=0)
    with pytest.raises(InvalidOptionError, match="return_tokens"):
        splade("a", return_dense=True, return_tokens=True)
    with pytest.raises(InvalidOptionError, match="prompt_name='passage'"):
        splade("a", prompt_name="passage")
    with pytest.raises(InvalidOptionError, match="does not take"):
        splade("a", pooling="mean")


def test_export_refuses_a_checkpoint_without_masked_lm_head(folders, tmp_path):
    from onnxpipe_export import export
    from onnxpipe_export.errors import UnsupportedTaskError

    with pytest.raises(UnsupportedTaskError, match="without a masked-LM head"):
        export(str(folders.checkpoint("base")), task="sparse-embedding", output=str(tmp_path / "out"), dtype="fp32", quiet=True)
    with pytest.raises(UnsupportedTaskError, match="sparse_linear.pt or colbert_linear.pt"):
        export(str(folders.checkpoint("base")), task="hybrid-embedding", output=str(tmp_path / "out"), dtype="fp32", quiet=True)
    with pytest.raises(UnsupportedTaskError, match="no modules.json"):
        export(str(folders.checkpoint("base")), task="multi-vector-embedding", output=str(tmp_path / "out"), dtype="fp32", quiet=True)
