"""Corpus input files: JSONL, CSV and Parquet rows, ids, and a clear error naming the row for every bad one."""

from __future__ import annotations

import json
import sys

import pytest

from onnxpipe.corpus.errors import CorpusDependencyError, CorpusInputError
from onnxpipe.corpus.readers import CorpusReader


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_csv(path, header, rows):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_parquet(path, columns):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


def test_formats_give_the_same_rows(tmp_path):
    texts = ["hello", "a, \"quoted\"\nline", "東京 😍"]
    jsonl = write_jsonl(tmp_path / "c.jsonl", [{"text": t, "doc": f"d{i}"} for i, t in enumerate(texts)])
    csv_file = write_csv(tmp_path / "c.csv", ["doc", "text"], [[f"d{i}", t] for i, t in enumerate(texts)])
    parquet = write_parquet(tmp_path / "c.parquet", {"text": texts, "doc": [f"d{i}" for i in range(3)]})
    for path in (jsonl, csv_file, parquet):
        reader = CorpusReader(path, id_column="doc")
        assert list(reader.checked_rows()) == [(i, f"d{i}", t) for i, t in enumerate(texts)], path
        assert reader.scan().rows == 3 and reader.scan().id_kind == "str"
        assert [i for i, _, _ in CorpusReader(path).checked_rows()] == [0, 1, 2]  # no id column: the row number


def test_jsonl_skips_blank_lines_and_keeps_int_ids(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a", "id": 7}\n\n   \n{"text": "b", "id": 3}\n', encoding="utf-8")
    reader = CorpusReader(path, id_column="id")
    assert list(reader.checked_rows()) == [(0, 7, "a"), (1, 3, "b")]
    assert reader.scan().id_kind == "int"


@pytest.mark.parametrize(("line", "message"), [
    ('{"title": "x"}', r"row 2 \(line 3\) has no text: column 'text' \(--text-column\) is missing"),
    ('{"text": null}', r"row 2 \(line 3\) has no text: column 'text' \(--text-column\) is null"),
    ('{"text": ""}', r"row 2 \(line 3\) has an empty text \(''\)"),
    ('{"text": "  \\n"}', r"row 2 \(line 3\) has an empty text"),
    ('{"text": 42}', r"row 2 \(line 3\) has a int \(42\) in column 'text'.*not a string"),
    ('{"text": ["a"]}', r"row 2 \(line 3\) has a list"),
    ('["a"]', r"row 2 \(line 3\) is a JSON list, not an object"),
    ('{"text": "a"', r"row 2 \(line 3\) is not JSON"),
])
def test_bad_jsonl_rows_are_named(tmp_path, line, message):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n' + line + '\n{"text": "c"}\n', encoding="utf-8")
    with pytest.raises(CorpusInputError, match=message) as info:
        CorpusReader(path).scan()
    assert info.value.row == 2


def test_bad_csv_rows_and_columns(tmp_path):
    path = write_csv(tmp_path / "c.csv", ["id", "text"], [["1", "ok"], ["2", ""], ["3", "fine"]])
    with pytest.raises(CorpusInputError, match=r"row 1 \(line 3\) has an empty text"):
        CorpusReader(path).scan()
    with pytest.raises(CorpusInputError, match=r"the header has no column 'body'; it has \['id', 'text'\]"):
        CorpusReader(path, text_column="body").scan()
    short = tmp_path / "short.csv"
    short.write_text("id,text\n1,ok\n2\n", encoding="utf-8")  # a row without the text cell
    with pytest.raises(CorpusInputError, match=r"row 1 \(line 3\) has no text"):
        CorpusReader(short).scan()


def test_bad_parquet_rows(tmp_path):
    path = write_parquet(tmp_path / "c.parquet", {"text": ["a", None, "c"], "id": [1, 2, None]})
    with pytest.raises(CorpusInputError, match=r"row 1 \(in file order\) has no text: .* is null"):
        CorpusReader(path).scan()
    path = write_parquet(tmp_path / "d.parquet", {"text": ["a", "b", "c"], "id": [1, 2, None]})
    with pytest.raises(CorpusInputError, match=r"row 2 .*its id in column 'id' \(--id-column\) is null"):
        CorpusReader(path, id_column="id").scan()
    path = write_parquet(tmp_path / "e.parquet", {"text": [1, 2]})
    with pytest.raises(CorpusInputError, match=r"row 0 .* has a int \(1\)"):
        CorpusReader(path).scan()
    with pytest.raises(CorpusInputError, match=r"no column 'body'; it has \['text'\]"):
        CorpusReader(path, text_column="body").scan()


def test_ids_must_be_one_kind(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": "a", "id": 1}, {"text": "b", "id": "x"}])
    with pytest.raises(CorpusInputError, match=r"row 1 \(line 2\) has a str id \('x'\) where earlier rows have int ids"):
        CorpusReader(path, id_column="id").scan()
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "id": 1.5}])
    with pytest.raises(CorpusInputError, match=r"row 0 \(line 1\): its id .* is 1.5 \(float\); ids must be ints or strings"):
        CorpusReader(path, id_column="id").scan()
    path = write_jsonl(tmp_path / "e.jsonl", [{"text": "a"}])
    with pytest.raises(CorpusInputError, match=r"its id in column 'id' \(--id-column\) is missing"):
        CorpusReader(path, id_column="id").scan()


def test_files_and_suffixes(tmp_path):
    with pytest.raises(CorpusInputError, match="no such input file"):
        CorpusReader(tmp_path / "none.jsonl")
    (tmp_path / "c.txt").write_text("a\n")
    with pytest.raises(CorpusInputError, match=r"cannot tell the input format from '.txt'; name the file with one of .jsonl"):
        CorpusReader(tmp_path / "c.txt")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(CorpusInputError, match="no rows to embed"):
        CorpusReader(tmp_path / "empty.jsonl").scan()


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "c.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(CorpusDependencyError, match=r"Parquet input .* needs pyarrow.*pip install 'onnxpipe\[corpus\]'"):
        list(CorpusReader(path).rows())
    jsonl = write_jsonl(tmp_path / "c.jsonl", [{"text": "a"}])  # JSONL needs no pyarrow
    assert CorpusReader(jsonl).scan().rows == 1
