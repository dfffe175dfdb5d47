"""`onnxpipe.ray.embed_dataset` on a local Ray instance: an actor pool of pipelines whose vectors equal the
single-process `onnxpipe embed` ones, rows in input order, and parameters checked before Ray starts anything."""

from __future__ import annotations

import os

import numpy as np
import pytest
from support.checkpoints import VARIED_TEXTS

from onnxpipe.corpus.embed import EmbedOptions, embed_texts, load_pipeline
from onnxpipe.errors import InvalidInputError, InvalidOptionError

pytest.importorskip("pyarrow")
pytest.importorskip("pandas")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from onnxpipe.ray import EmbedBatches, embed_dataset  # noqa: E402

pytestmark = pytest.mark.ray

TEXTS = [f"{text} ({i})" * (1 + i % 3) for i, text in enumerate([t for t in VARIED_TEXTS if t.strip()] * 8)]


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def bert(models):
    return str(models.get("bert", "feature-extraction").onnx)


def test_actor_pool_gives_the_single_process_vectors_in_order(bert, local_ray):
    want = embed_texts(load_pipeline(bert), TEXTS, EmbedOptions(normalize=True))
    ds = ray.data.from_items([{"text": t, "n": i} for i, t in enumerate(TEXTS)], override_num_blocks=8)
    out = embed_dataset(ds, model=bert, normalize=True, batch_size=7, concurrency=2, num_cpus=1)
    rows = out.take_all()
    assert [row["n"] for row in rows] == list(range(len(TEXTS)))  # order kept across two actors
    assert [row["text"] for row in rows] == TEXTS
    got = np.stack([row["embedding"] for row in rows])
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)  # other batches, other padding: equal to float noise


def test_map_batches_class_on_its_own(bert):
    """EmbedBatches is the documented map_batches callable class (run by the actors above): other columns pass
    through, output_column names the vectors, bad rows are named. Called here in-process, as an actor calls it."""
    embed = EmbedBatches(bert, column="body", output_column="v", pooling="cls", batch_size=3)
    batch = {"body": np.array(TEXTS[:10], dtype=object), "n": np.arange(10)}
    out = embed(batch)
    assert sorted(out) == ["body", "n", "v"] and out["n"].tolist() == list(range(10))
    want = embed_texts(load_pipeline(bert), TEXTS[:10], EmbedOptions(pooling="cls"))
    np.testing.assert_allclose(out["v"], want, atol=1e-5)
    assert embed({"body": np.array([], dtype=object)})["v"].shape == (0, 32)
    with pytest.raises(InvalidInputError, match=r"column 'body' holds '' \(position 1 of a batch of 2\)"):
        embed({"body": np.array(["fine", ""], dtype=object)})
    with pytest.raises(InvalidInputError, match=r"column 'body' holds None"):
        embed({"body": np.array(["fine", None], dtype=object)})
    with pytest.raises(InvalidInputError, match=r"the dataset has no column 'body'; it has \['text'\]. Pass column="):
        embed({"text": np.array(["x"], dtype=object)})


def test_bad_parameters_are_refused_before_ray_runs(bert, local_ray):
    ds = ray.data.from_items([{"text": "a"}])
    with pytest.raises(InvalidOptionError, match="embed_dataset takes a ray.data.Dataset; got list"):
        embed_dataset(["a"], model=bert)
    for concurrency in (0, (2, 1), (1, 2, 3), True):
        with pytest.raises(InvalidOptionError, match=r"concurrency must be an int >= 1 or a \(min, max\) pair"):
            embed_dataset(ds, model=bert, concurrency=concurrency)
    with pytest.raises(InvalidOptionError, match="batch_size must be an int >= 1; got 0"):
        embed_dataset(ds, model=bert, batch_size=0)
    with pytest.raises(InvalidOptionError, match="pooling must be one of auto"):
        embed_dataset(ds, model=bert, pooling="sum")
