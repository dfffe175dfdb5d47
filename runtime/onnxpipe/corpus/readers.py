"""Corpus input files, streamed row by row: JSONL (one JSON object a line), CSV (a header row) and Parquet (pyarrow).

Every row must carry a non-empty string in the text column; the optional id column holds ints or strings (one kind
per file). Rows are numbered from 0 in file order, blank JSONL lines left out; the number is also a row's default id
and its index in a `.npy` output. `scan` checks every row once (before anything is embedded) and counts them.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from onnxpipe.corpus.errors import CorpusInputError, require_pyarrow

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_MISSING = object()


def input_format(path: Path) -> str:
    """The format of an input file, from its suffix; CorpusInputError listing the suffixes read."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise CorpusInputError(f"{path}: cannot tell the input format from {path.suffix or 'no suffix'!r}; "
                               f"name the file with one of {', '.join(FORMATS)} (JSON lines, CSV with a header, Parquet).")
    return kind


@dataclass(frozen=True)
class Row:
    """One input row: its number (0-based), where it is in the file (for messages), its text and id values."""

    number: int
    where: str
    text: Any
    id: Any


@dataclass(frozen=True)
class Scan:
    """What a full pass over the input found: the row count and the kind of the ids ("int" or "str")."""

    rows: int
    id_kind: str


class CorpusReader:
    """Rows of one input file with the text in `text_column` and the id in `id_column` (None: the row number)."""

    def __init__(self, path: Path, text_column: str = "text", id_column: Optional[str] = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise CorpusInputError(f"{self.path}: no such input file.")
        self.format = input_format(self.path)
        self.text_column = text_column
        self.id_column = id_column

    def rows(self) -> Iterator[Row]:
        """Every row in file order, unchecked."""
        if self.format == "jsonl":
            return self._jsonl_rows()
        if self.format == "csv":
            return self._csv_rows()
        return self._parquet_rows()

    def checked_rows(self) -> Iterator[tuple[int, Any, str]]:
        """(row number, id, text) of every row, each checked (CorpusInputError naming the first bad row)."""
        id_kind: Optional[str] = None
        for row in self.rows():
            self.check_text(row)
            if self.id_column is None:
                yield row.number, row.number, row.text
                continue
            kind = self.check_id(row)
            if id_kind is not None and kind != id_kind:
                raise CorpusInputError(
                    f"{self.path}: row {row.number} ({row.where}) has a {kind} id ({row.id!r}) where earlier rows "
                    f"have {id_kind} ids; column {self.id_column!r} must hold one kind (ints or strings).", row.number)
            id_kind = kind
            yield row.number, row.id, row.text

    def scan(self) -> Scan:
        """Check every row and count them; CorpusInputError on the first bad row or an empty file."""
        count, id_kind = 0, "int"
        for count, (_, value, _) in enumerate(self.checked_rows(), start=1):
            if count == 1 and self.id_column is not None:
                id_kind = "int" if isinstance(value, int) else "str"
        if count == 0:
            raise CorpusInputError(f"{self.path}: no rows to embed.")
        return Scan(count, id_kind)

    def check_text(self, row: Row) -> None:
        """CorpusInputError unless the row's text is a non-empty string."""
        column = f"column {self.text_column!r} (--text-column)"
        if row.text is _MISSING or row.text is None:
            problem = f"has no text: {column} is missing" if row.text is _MISSING else f"has no text: {column} is null"
        elif not isinstance(row.text, str):
            problem = f"has a {type(row.text).__name__} ({row.text!r:.60}) in {column}, not a string"
        elif not row.text.strip():
            problem = f"has an empty text ({row.text!r}) in {column}"
        else:
            return
        raise CorpusInputError(f"{self.path}: row {row.number} ({row.where}) {problem}; every row needs a non-empty "
                               "string. Fix or drop the row and rerun.", row.number)

    def check_id(self, row: Row) -> str:
        """The kind of the row's id ("int" or "str"); CorpusInputError when it is missing or of another type."""
        if isinstance(row.id, bool) or not isinstance(row.id, (int, str)):
            if row.id is _MISSING or row.id is None:
                shown = "is missing" if row.id is _MISSING else "is null"
            else:
                shown = f"is {row.id!r} ({type(row.id).__name__})"
            raise CorpusInputError(f"{self.path}: row {row.number} ({row.where}): its id in column {self.id_column!r} "
                                   f"(--id-column) {shown}; ids must be ints or strings.", row.number)
        return "int" if isinstance(row.id, int) else "str"

    def _jsonl_rows(self) -> Iterator[Row]:
        number = 0
        with open(self.path, encoding="utf-8") as lines:
            for line_number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"line {line_number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CorpusInputError(f"{self.path}: row {number} ({where}) is not JSON: {exc}.", number) from exc
                if not isinstance(record, dict):
                    raise CorpusInputError(f"{self.path}: row {number} ({where}) is a JSON {type(record).__name__}, "
                                           "not an object; each line must be one object such as {\"text\": \"...\"}.", number)
                yield Row(number, where, record.get(self.text_column, _MISSING), self._id(record))
                number += 1

    def _csv_rows(self) -> Iterator[Row]:
        with open(self.path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            for name in (self.text_column, self.id_column):
                if name is not None and name not in columns:
                    raise CorpusInputError(f"{self.path}: the header has no column {name!r}; it has {columns}. "
                                           "Pass --text-column / --id-column.")
            number = 0
            try:
                for record in reader:
                    yield Row(number, f"line {reader.line_num}", record.get(self.text_column), self._id(record))
                    number += 1
            except csv.Error as exc:
                raise CorpusInputError(f"{self.path}: row {number} (line {reader.line_num}) cannot be read as CSV: {exc}.",
                                       number) from exc

    def _id(self, record: dict[str, Any]) -> Any:
        return None if self.id_column is None else record.get(self.id_column, _MISSING)

    def _parquet_rows(self) -> Iterator[Row]:
        pq = require_pyarrow(f"Parquet input ({self.path})")
        source = pq.ParquetFile(self.path)
        names = source.schema_arrow.names
        for name in (self.text_column, self.id_column):
            if name is not None and name not in names:
                raise CorpusInputError(f"{self.path}: no column {name!r}; it has {names}. Pass --text-column / --id-column.")
        columns = [self.text_column] + ([self.id_column] if self.id_column else [])
        number = 0
        for batch in source.iter_batches(batch_size=4096, columns=columns):
            texts = batch.column(0).to_pylist()
            ids = batch.column(1).to_pylist() if self.id_column else [None] * len(texts)
            for text, value in zip(texts, ids):
                yield Row(number, "in file order", text, value if self.id_column else None)
                number += 1
