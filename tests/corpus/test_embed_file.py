"""`embed_file` (what `onnxpipe embed` runs): vectors equal to the pipeline's own, in row order, written chunk by chunk,
resumed after an interruption into the same file an uninterrupted run writes, and refusing what it cannot do."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from support.checkpoints import VARIED_TEXTS
from support.st_folders import st_folders

from onnxpipe import pipeline
from onnxpipe.corpus import job
from onnxpipe.corpus.embed import EmbedOptions, embed_texts, length_order, load_pipeline
from onnxpipe.corpus.errors import CorpusDependencyError, CorpusInputError, CorpusStateError
from onnxpipe.corpus.job import embed_file
from onnxpipe.corpus.resume import sidecar
from onnxpipe.corpus.writers import embedding_matrix
from onnxpipe.errors import InvalidOptionError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

TEXTS = [t for t in VARIED_TEXTS if t.strip()]
CORPUS = [f"{text} ({i})" if i % 3 else text * (1 + i % 4) for i, text in enumerate(TEXTS * 6)]  # varied lengths


@pytest.fixture(scope="module")
def bert(models):
    """A plain tiny BERT feature-extraction folder (no modules.json: pooling 'auto' is mean)."""
    return str(models.get("bert", "feature-extraction").onnx)


@pytest.fixture(scope="module")
def st_folder(tmp_path_factory):
    """A tiny sentence-transformers folder: CLS pooling, a Dense layer, Normalize, query/passage prompts."""
    return str(st_folders(tmp_path_factory).get("cls-dense-normalize").onnx)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": t, "doc": f"doc-{i}"}) + "\n" for i, t in enumerate(CORPUS)), encoding="utf-8")
    return path


def _read(path):
    if path.suffix == ".npy":
        return None, np.load(path)
    table = pq.read_table(path)
    return table.column("id").to_pylist(), embedding_matrix(table)


def test_npy_and_parquet_hold_the_pipelines_vectors_in_row_order(bert, corpus, tmp_path):
    pipe = pipeline("feature-extraction", model=bert)
    want = np.stack([pipe(t, pooling="mean", return_tensors=True) for t in CORPUS])  # one at a time: no padding
    result = embed_file(bert, corpus, tmp_path / "v.npy", chunk_size=16, options=EmbedOptions(batch_size=4), progress=False)
    assert (result.rows, result.embedded, result.dim, result.pooling) == (len(CORPUS), len(CORPUS), 32, "mean")
    _, vectors = _read(tmp_path / "v.npy")
    assert vectors.dtype == np.float32 and vectors.shape == want.shape
    np.testing.assert_allclose(vectors, want, atol=1e-5)
    embed_file(bert, corpus, tmp_path / "v.parquet", id_column="doc", chunk_size=16, options=EmbedOptions(batch_size=4),
               progress=False)
    ids, table_vectors = _read(tmp_path / "v.parquet")
    assert ids == [f"doc-{i}" for i in range(len(CORPUS))]
    np.testing.assert_array_equal(table_vectors, vectors)  # same chunks, same batches: the same numbers
    schema = pq.read_schema(tmp_path / "v.parquet")
    kind = schema.field("embedding").type
    assert pa.types.is_fixed_size_list(kind) and kind.list_size == 32 and kind.value_type == pa.float32()
    assert schema.metadata[b"onnxpipe.pooling"] == b"mean"
    assert not sidecar(tmp_path / "v.parquet").exists()


def test_written_chunk_by_chunk(bert, corpus, tmp_path, monkeypatch):
    """Memory holds one chunk: every embedding call gets at most chunk_size texts, and every part (one row group
    of the output) holds one chunk."""
    seen = []
    real = job.embed_texts
    monkeypatch.setattr(job, "embed_texts", lambda pipe, texts, *a, **k: seen.append(len(texts)) or real(pipe, texts, *a, **k))
    out = tmp_path / "v.parquet"
    embed_file(bert, corpus, out, chunk_size=20, progress=False)
    sizes = [20] * (len(CORPUS) // 20) + ([len(CORPUS) % 20] if len(CORPUS) % 20 else [])
    assert seen == sizes
    metadata = pq.ParquetFile(out).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == sizes
    assert pq.read_table(out).column("id").to_pylist() == list(range(len(CORPUS)))  # default ids: row numbers


def test_longest_first_within_a_chunk_and_order_restored(bert):
    pipe = load_pipeline(bert)
    texts = ["aa", "a", "aaaa", "aaa", "aaaa"]
    assert length_order(texts).tolist() == [2, 4, 3, 0, 1]
    calls = []
    real = pipe.__class__.__call__

    class Spy(pipe.__class__):
        def __call__(self, inputs, **options):
            calls.append(list(inputs))
            return real(self, inputs, **options)

    pipe.__class__ = Spy
    vectors = embed_texts(pipe, texts, EmbedOptions(batch_size=2, normalize=True))
    assert calls == [["aaaa", "aaaa"], ["aaa", "aa"], ["a"]]
    for text, vector in zip(texts, vectors):
        np.testing.assert_allclose(vector, real(pipe, text, pooling="mean", normalize=True, return_tensors=True), atol=1e-5)


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_resume_after_an_interruption_writes_the_uninterrupted_file(bert, corpus, tmp_path, monkeypatch, suffix):
    whole = tmp_path / f"whole{suffix}"
    embed_file(bert, corpus, whole, chunk_size=10, options=EmbedOptions(batch_size=4), progress=False)
    out = tmp_path / f"out{suffix}"
    real, calls = job.embed_texts, []

    def stop_at_third(pipe, texts, *args, **kwargs):
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(pipe, texts, *args, **kwargs)

    monkeypatch.setattr(job, "embed_texts", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        embed_file(bert, corpus, out, chunk_size=10, options=EmbedOptions(batch_size=4), progress=False)
    monkeypatch.setattr(job, "embed_texts", real)
    folder = sidecar(out)
    assert not out.exists() and sorted(p.name for p in folder.glob("part-*")) == [f"part-00000{i}{suffix}" for i in (0, 1)]
    (folder / f"part-000002{suffix}.tmp").write_bytes(b"half a part")  # killed while writing: ignored, overwritten
    stream = io.StringIO()
    result = embed_file(bert, corpus, out, chunk_size=10, options=EmbedOptions(batch_size=4), stream=stream)
    assert (result.rows, result.embedded) == (len(CORPUS), len(CORPUS) - 20)
    assert f"embed: {len(CORPUS):,}/{len(CORPUS):,} texts (100.0%)" in stream.getvalue()
    assert out.read_bytes() == whole.read_bytes(), suffix  # byte for byte
    assert not folder.exists()


def test_a_partial_run_of_another_command_is_refused(bert, st_folder, corpus, tmp_path, monkeypatch):
    out = tmp_path / "out.npy"
    monkeypatch.setattr(job, "embed_texts", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        embed_file(bert, corpus, out, chunk_size=10, progress=False)
    monkeypatch.undo()
    with pytest.raises(CorpusStateError, match=r"unfinished run of another command \(normalize: False then, True now\)"):
        embed_file(bert, corpus, out, chunk_size=10, options=EmbedOptions(normalize=True), progress=False)
    with pytest.raises(CorpusStateError, match=r"chunk_size: 10 then, 11 now"):
        embed_file(bert, corpus, out, chunk_size=11, progress=False)
    corpus.write_text(corpus.read_text() + json.dumps({"text": "one more"}) + "\n")
    with pytest.raises(CorpusStateError, match=r"input_bytes: \d+ then, \d+ now.*--restart"):
        embed_file(bert, corpus, out, chunk_size=10, progress=False)
    result = embed_file(bert, corpus, out, chunk_size=10, restart=True, progress=False)
    assert result.rows == len(CORPUS) + 1 == len(np.load(out))
    with pytest.raises(CorpusStateError, match=r"out.npy already exists; pass --overwrite"):
        embed_file(bert, corpus, out, progress=False)
    assert embed_file(bert, corpus, out, overwrite=True, progress=False).rows == len(CORPUS) + 1


def test_sentence_transformers_folder_uses_its_own_embedding(st_folder, corpus, tmp_path):
    pipe = pipeline("feature-extraction", model=st_folder)
    out = tmp_path / "v.npy"
    result = embed_file(st_folder, corpus, out, options=EmbedOptions(prompt_name="passage"), progress=False)
    assert result.pooling == "folder" and result.dim == 16
    want = np.stack([pipe.encode(t, prompt_name="passage") for t in CORPUS])
    np.testing.assert_allclose(np.load(out), want, atol=1e-5)
    assert np.abs(np.linalg.norm(np.load(out), axis=1) - 1).max() < 1e-5  # the folder's Normalize
    mean = embed_file(st_folder, corpus, tmp_path / "m.npy", options=EmbedOptions(pooling="mean"), progress=False)
    assert mean.dim == 32 and mean.pooling == "mean"


def test_bad_rows_and_options_stop_before_anything_is_written(bert, st_folder, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n{"text": ""}\n', encoding="utf-8")
    with pytest.raises(CorpusInputError, match=r"row 2 \(line 3\) has an empty text"):
        embed_file(bert, path, tmp_path / "v.npy", progress=False)
    assert not (tmp_path / "v.npy").exists() and not sidecar(tmp_path / "v.npy").exists()
    good = tmp_path / "g.jsonl"
    good.write_text('{"text": "a"}\n', encoding="utf-8")
    with pytest.raises(CorpusInputError, match=r"v.csv: cannot tell the output format from '.csv'; name it .parquet"):
        embed_file(bert, good, tmp_path / "v.csv", progress=False)
    with pytest.raises(InvalidOptionError, match=r"--id-column\) has no place in v.npy.*Write a .parquet output"):
        embed_file(bert, good, tmp_path / "v.npy", id_column="doc", progress=False)
    with pytest.raises(InvalidOptionError, match="pooling must be one of auto, folder, "):
        EmbedOptions(pooling="none")
    with pytest.raises(InvalidOptionError, match="batch_size must be an int >= 1; got 0"):
        EmbedOptions(batch_size=0)
    with pytest.raises(InvalidOptionError, match="chunk_size must be an int >= 1"):
        embed_file(bert, good, tmp_path / "v.npy", chunk_size=0, progress=False)
    with pytest.raises(InvalidOptionError, match="nope"):  # a prompt the folder does not define
        embed_file(st_folder, good, tmp_path / "v.npy", options=EmbedOptions(prompt_name="nope"), progress=False)
    assert not sidecar(tmp_path / "v.npy").exists()


def test_parquet_output_without_pyarrow_names_the_extra(bert, tmp_path, monkeypatch):
    import sys

    good = tmp_path / "g.jsonl"
    good.write_text('{"text": "a"}\n{"text": "bb"}\n', encoding="utf-8")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(CorpusDependencyError, match=r"Parquet output .* needs pyarrow.*onnxpipe\[corpus\]"):
        embed_file(bert, good, tmp_path / "v.parquet", progress=False)
    assert embed_file(bert, good, tmp_path / "v.npy", progress=False).rows == 2  # .npy needs no pyarrow
