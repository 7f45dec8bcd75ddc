"""Streaming readers: every format, every row accounted for, bad rows carry a reason."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserInputError
from pipeline.io import text_window
from pipeline.io.readers import ReadStats, dataset_files, read_dataset, read_file


def _rows(path: Path, limit: int = 10_000) -> tuple[list, ReadStats]:
    stats = ReadStats()
    return list(read_file(path, path.name, limit, stats)), stats


def test_jsonl_bom_crlf_blank_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"prompt": "one"}\r\n'
        b"\n"
        b'{"prompt": "two"\r\n'
        b'{"prompt": "caf\xe9"}\n'
        b"[1, 2]\n"
        b'{"prompt": NaN}\n'
        b'{"prompt": "\\ud800"}\n'
        b'{"prompt": "\\ud83d\\ude00"}'  # a valid pair, no final newline
    )
    rows, stats = _rows(path)
    assert stats.lines == 8 and stats.blank == 1
    assert [(r.line, r.reason) for r in rows] == [
        (1, None),
        (3, "invalid_json"),
        (4, "invalid_utf8"),
        (5, "not_an_object"),
        (6, "invalid_json"),
        (7, "invalid_unicode"),
        (8, None),
    ]
    assert rows[0].value == {"prompt": "one"}
    assert rows[-1].value == {"prompt": "\U0001f600"}
    assert "\\xe9" in rows[2].raw_text()  # invalid bytes stay visible in the stored raw text


def test_oversize_line_is_rejected_without_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b'{"prompt": "' + b"x" * 50_000 + b'"}\n{"prompt": "ok"}\n')
    rows, _ = _rows(path, limit=1000)
    assert [(r.line, r.reason) for r in rows] == [(1, "oversize_line"), (2, None)]
    assert "max_line_bytes=1000" in rows[0].detail
    assert len(rows[0].raw_text()) <= 1001


def test_truncated_gzip_keeps_rows_read_so_far(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(b'{"prompt": "p%d"}\n' % i for i in range(2000)))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    rows, stats = _rows(path)
    assert rows[-1].reason == "read_error"
    assert all(r.reason is None for r in rows[:-1]) and len(rows) > 1
    assert stats.lines == len(rows)


def test_json_array_streams_elements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_window, "CHUNK_CHARS", 7)  # elements span many small reads
    path = tmp_path / "a.json"
    items = [{"prompt": f"p{i}", "n": i} for i in range(3000)]
    path.write_text("\ufeff" + json.dumps(items, indent=1), encoding="utf-8")
    rows, stats = _rows(path, limit=100)
    assert stats.lines == 3000
    assert [r.line for r in rows] == list(range(1, 3001))
    assert rows[2999].value == {"prompt": "p2999", "n": 2999}


def test_json_array_bad_element_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b'[{"prompt": "a"}, 7, {"prompt": "b\xff"}, {"prompt": ')
    rows, _ = _rows(path)
    assert [(r.line, r.reason) for r in rows] == [
        (1, None),
        (2, "not_an_object"),
        (3, "invalid_utf8"),
        (4, "invalid_json"),
    ]
    path.write_text('{"prompt": "not an array"}')
    rows, _ = _rows(path)
    assert [r.reason for r in rows] == ["invalid_json"]
    path.write_text("[]")
    assert _rows(path)[0] == []


def test_csv_rows_multiline_fields_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(["prompt", "quality", "channel"])
        writer.writerow(["line one\nline two", "4.5", "chat"])
        writer.writerow(["", "", ""])
        writer.writerow(["short row"])
        writer.writerow(["third", "x", "mail"])
    rows, stats = _rows(path)
    assert stats.lines == 4 and stats.blank == 1
    assert [(r.line, r.reason) for r in rows] == [(1, None), (3, "invalid_csv"), (4, None)]
    assert rows[0].value == {"prompt": "line one\nline two", "quality": "4.5", "channel": "chat"}
    assert rows[0].from_text


def test_parquet_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    table = pa.table({"prompt": [f"p{i}" for i in range(20_000)], "quality": [1.0] * 20_000})
    pq.write_table(table, path, row_group_size=5000)
    rows, stats = _rows(path)
    assert stats.lines == 20_000 and rows[-1].line == 20_000
    assert rows[7].value == {"prompt": "p7", "quality": 1.0}
    path.write_bytes(b"PAR1 not parquet")
    rows, _ = _rows(path)
    assert [r.reason for r in rows] == ["read_error"]


def test_dataset_files_sorted_and_filtered(tmp_path: Path) -> None:
    for name in ("b.jsonl", "a.csv", "sub/c.json", "notes.txt", ".hidden/d.jsonl"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert [rel for _, rel in dataset_files(tmp_path)] == ["a.csv", "b.jsonl", "sub/c.json"]
    stats = ReadStats()
    assert list(read_dataset(dataset_files(tmp_path), 100, stats)) == []
    assert stats.files == ["a.csv", "b.jsonl", "sub/c.json"]
    with pytest.raises(UserInputError, match="does not exist"):
        dataset_files(tmp_path / "missing")
    with pytest.raises(UserInputError, match="unsupported format"):
        dataset_files(tmp_path / "notes.txt")


def test_csv_invalid_utf8_row_keeps_its_bytes_visible(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b'prompt,label\r\ncaf\xe9,x\r\nok,"a,b"\r\n')
    rows, _ = _rows(path)
    assert [(r.line, r.reason) for r in rows] == [(1, "invalid_utf8"), (2, None)]
    assert rows[0].raw_text() == "caf\\xe9,x"
    assert rows[1].raw_text() == 'ok,"a,b"'
