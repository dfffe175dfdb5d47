"""Outputs written in parts, then joined: each chunk of vectors goes to its own part file (written whole, then renamed,
so an interruption never leaves half a part), and the finished parts are streamed into the output one at a time.

`.npy`: the vectors only, float32, in row order (parts are .npy files). `.parquet`: columns `id` (int64 or string)
and `embedding` (fixed_size_list<float32>[dim]), one row group per chunk (parts are Parquet files); needs pyarrow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from onnxpipe.corpus.errors import CorpusInputError, require_pyarrow

OUTPUT_FORMATS = {".npy": "npy", ".parquet": "parquet", ".pq": "parquet"}


def output_format(path: Path) -> str:
    """The format of an output path, from its suffix; CorpusInputError listing the suffixes written."""
    kind = OUTPUT_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise CorpusInputError(f"{path}: cannot tell the output format from {path.suffix or 'no suffix'!r}; name it "
                               ".parquet (ids and vectors) or .npy (vectors only, in row order).")
    if kind == "parquet":
        require_pyarrow(f"Parquet output ({path})")
    return kind


def part_path(folder: Path, index: int, kind: str) -> Path:
    """Where part `index` of a run lives."""
    return folder / f"part-{index:06d}.{kind}"


def _table(ids: Sequence[Any], vectors: np.ndarray, id_kind: str) -> Any:
    require_pyarrow("Parquet output")
    import pyarrow as pa

    id_type = pa.int64() if id_kind == "int" else pa.string()
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    embedding = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    return pa.table({"id": pa.array(list(ids), type=id_type), "embedding": embedding})


def write_part(folder: Path, index: int, kind: str, ids: Sequence[Any], vectors: np.ndarray, id_kind: str) -> Path:
    """Write one chunk's vectors (and ids, for Parquet) as part `index`, atomically."""
    final = part_path(folder, index, kind)
    tmp = final.with_name(final.name + ".tmp")
    if kind == "npy":
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(vectors, dtype=np.float32))
    else:
        require_pyarrow("Parquet output").write_table(_table(ids, vectors, id_kind), tmp)
    os.replace(tmp, final)
    return final


def read_part(path: Path) -> np.ndarray:
    """The vectors of a written part, (rows, dim) float32."""
    if path.suffix == ".npy":
        return np.load(path)
    table = require_pyarrow("Parquet output").read_table(path)
    return embedding_matrix(table)


def embedding_matrix(table: Any, column: str = "embedding") -> np.ndarray:
    """A Parquet / Arrow table's embedding column as one (rows, dim) float32 array."""
    values = table.column(column).combine_chunks()
    dim = values.type.list_size
    return values.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)


def join_parts(folder: Path, parts: int, kind: str, output: Path, rows: int, metadata: dict[str, str]) -> None:
    """Stream parts 0..parts-1 into `output` (written beside it, then renamed); memory holds one part at a time."""
    tmp = output.with_name(output.name + ".tmp")
    if kind == "npy":
        _join_npy(folder, parts, tmp, rows)
    else:
        _join_parquet(folder, parts, tmp, metadata)
    os.replace(tmp, output)


def _join_npy(folder: Path, parts: int, tmp: Path, rows: int) -> None:
    with open(tmp, "wb") as handle:
        for index in range(parts):
            vectors = np.load(part_path(folder, index, "npy"))
            if index == 0:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                          "shape": (rows, vectors.shape[1])}
                np.lib.format.write_array_header_1_0(handle, header)
            handle.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())


def _join_parquet(folder: Path, parts: int, tmp: Path, metadata: dict[str, str]) -> None:
    pq = require_pyarrow("Parquet output")
    writer = None
    try:
        for index in range(parts):
            table = pq.read_table(part_path(folder, index, "parquet"))
            if writer is None:
                schema = table.schema.with_metadata({k.encode(): v.encode() for k, v in metadata.items()})
                writer = pq.ParquetWriter(tmp, schema)
            writer.write_table(table.replace_schema_metadata(writer.schema.metadata), row_group_size=max(1, table.num_rows))
    finally:
        if writer is not None:
            writer.close()
