"""`onnxpipe.ray.embed_dataset` on a local Ray instance: an actor pool of pipelines whose vectors equal the
single-process `onnxpipe embed` ones, rows in input order, and parameters checked before Ray starts anything."""

from __future__ import annotations

import os

import numpy as np
import pytest
from support.checkpoints import VARIED_TEXTS

from onnxpipe.corpus.embed import EmbedOptions, embed_texts, load_pipeline
from onnxpipe.errors import InvalidOptionError

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


def test_map_batches_class_on_its_own(bert, local_ray):
    """EmbedBatches is a documented map_batches callable class: other columns pass through, output_column names
    the vectors."""
    ds = ray.data.from_items([{"body": t} for t in TEXTS[:10]])
    out = ds.map_batches(EmbedBatches, fn_constructor_kwargs={"model": bert, "column": "body", "output_column": "v",
                                                               "pooling": "cls"},
                         batch_size=4, compute=ray.data.ActorPoolStrategy(size=1))
    rows = out.take_all()
    want = embed_texts(load_pipeline(bert), TEXTS[:10], EmbedOptions(pooling="cls"))
    got = np.stack([row["v"] for row in rows])
    assert sorted(rows[0]) == ["body", "v"] and sorted(row["body"] for row in rows) == sorted(TEXTS[:10])
    order = [TEXTS.index(row["body"]) for row in rows]  # map_batches alone does not promise order
    want = want[order]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_bad_parameters_and_rows(bert, local_ray):
    ds = ray.data.from_items([{"text": "a"}])
    with pytest.raises(InvalidOptionError, match="embed_dataset takes a ray.data.Dataset; got list"):
        embed_dataset(["a"], model=bert)
    with pytest.raises(InvalidOptionError, match=r"concurrency must be an int >= 1 or a \(min, max\) pair"):
        embed_dataset(ds, model=bert, concurrency=0)
    with pytest.raises(InvalidOptionError, match="batch_size must be an int >= 1; got 0"):
        embed_dataset(ds, model=bert, batch_size=0)
    with pytest.raises(InvalidOptionError, match="pooling must be one of auto"):
        embed_dataset(ds, model=bert, pooling="sum")
    bad = ray.data.from_items([{"text": "fine"}, {"text": ""}])
    with pytest.raises(Exception, match=r"column 'text' holds '' \(position 1 of a batch of 2\)"):
        embed_dataset(bad, model=bert).take_all()
    with pytest.raises(Exception, match=r"the dataset has no column 'text'; it has \['body'\]"):
        embed_dataset(ray.data.from_items([{"body": "x"}]), model=bert).take_all()
