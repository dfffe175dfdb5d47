"""`onnxpipe embed` as a function: a corpus file to a vector file, chunk by chunk, resumable.

The input is checked and counted first (a bad row stops the run before anything is embedded). Then rows are cut into
chunks of `chunk_size` at fixed row numbers; each chunk is embedded longest text first and written as one part in
row order, so memory holds one chunk at a time. The parts are joined into the output at the end.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, TextIO, Union

import numpy as np

from onnxpipe.corpus.embed import (
    EmbedOptions,
    Truncations,
    check_options,
    counting_truncations,
    embed_texts,
    load_pipeline,
    resolve_pooling,
)
from onnxpipe.corpus.errors import CorpusInputError, require_pyarrow
from onnxpipe.corpus.progress import Progress
from onnxpipe.corpus.readers import CorpusReader
from onnxpipe.corpus.resume import input_stamp, open_run
from onnxpipe.corpus.writers import join_parts, output_format, write_part
from onnxpipe.errors import InvalidOptionError

DEFAULT_CHUNK_SIZE = 8192


@dataclass(frozen=True)
class EmbedResult:
    """What a finished run did: rows in the output, rows embedded by this call (less after a resume), the vector
    size, the pooling used, the texts/s of this call and how many of its texts were cut to the model's limit."""

    output: Path
    rows: int
    embedded: int
    dim: int
    pooling: str
    texts_per_s: float
    truncated: int = 0


def _chunks(reader: CorpusReader, size: int, skip: int) -> Iterator[tuple[list[Any], list[str]]]:
    rows = itertools.islice(reader.checked_rows(), skip * size, None)
    while True:
        chunk = list(itertools.islice(rows, size))
        if not chunk:
            return
        yield [value for _, value, _ in chunk], [text for _, _, text in chunk]


def embed_file(model: Union[str, Path], input_path: Union[str, Path], output: Union[str, Path], *,
               text_column: str = "text", id_column: Optional[str] = None, options: Optional[EmbedOptions] = None,
               dtype: Optional[str] = None, device: str = "cpu", threads: Optional[int] = None,
               chunk_size: int = DEFAULT_CHUNK_SIZE, overwrite: bool = False, restart: bool = False,
               progress: bool = True, stream: Optional[TextIO] = None) -> EmbedResult:
    """Embed the text column of `input_path` (JSONL, CSV, Parquet) into `output` (.parquet with id and embedding,
    or .npy); a rerun after an interruption continues from the last finished chunk (see onnxpipe.corpus.resume)."""
    options = options or EmbedOptions()
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidOptionError(f"chunk_size must be an int >= 1; got {chunk_size!r}.")
    input_path, output = Path(input_path), Path(output)
    kind = output_format(output)
    if kind == "npy" and id_column is not None:
        raise InvalidOptionError(f"id_column={id_column!r} (--id-column) has no place in {output.name}: a .npy output "
                                 "holds the vectors only, in row order. Write a .parquet output to keep the ids.")
    reader = CorpusReader(input_path, text_column, id_column)
    pipe = load_pipeline(str(model), dtype, device, threads)
    check_options(pipe, options)
    pooling = resolve_pooling(pipe, options.pooling)
    scan = reader.scan()
    settings = {**input_stamp(input_path), "model": str(pipe.folder.path.resolve()), "model_file": pipe.model_path.name,
                **asdict(options), "pooling": pooling, "text_column": text_column, "id_column": id_column,
                "chunk_size": chunk_size, "output_format": kind, "rows": scan.rows, "id_kind": scan.id_kind}
    state = open_run(output, settings, kind, overwrite, restart)
    done_rows = min(state.parts_done * chunk_size, scan.rows)
    bar = Progress(scan.rows, done_rows, stream=stream, enabled=progress)
    dim, truncations = 0, Truncations()
    for index, (ids, texts) in enumerate(_chunks(reader, chunk_size, state.parts_done), start=state.parts_done):
        with counting_truncations(truncations):
            vectors = embed_texts(pipe, texts, options, on_batch=bar.update)
        dim = vectors.shape[1]
        write_part(state.folder, index, kind, ids, vectors, scan.id_kind)
        state.part_done(index)
    parts = -(-scan.rows // chunk_size)
    if state.parts_done != parts:  # the input changed under us (its stamp is checked only at the start)
        raise CorpusInputError(f"{input_path} changed while it was read ({state.parts_done} of {parts} chunks); rerun.")
    metadata = {"onnxpipe.model": settings["model"], "onnxpipe.model_file": settings["model_file"],
                "onnxpipe.pooling": pooling, "onnxpipe.normalize": str(options.normalize).lower()}
    join_parts(state.folder, parts, kind, output, scan.rows, metadata)
    state.remove()
    bar.finish(f"wrote {output}")
    if truncations.texts:
        warnings.warn(f"{truncations.texts:,} of {scan.rows - done_rows:,} texts were longer than {truncations.limit} "
                      "tokens and were cut to fit the model (as sentence-transformers does).", UserWarning, stacklevel=2)
    embedded = scan.rows - done_rows
    return EmbedResult(output, scan.rows, embedded, dim or _dim_of(output, kind), pooling, bar.rate(), truncations.texts)


def _dim_of(output: Path, kind: str) -> int:
    """The vector size of a written output (a resumed run with nothing left to embed)."""
    if kind == "npy":
        return int(np.load(output, mmap_mode="r").shape[1])
    return int(require_pyarrow("Parquet output").read_schema(output).field("embedding").type.list_size)
