"""CSV and Parquet readers: one `RawRow` per data row (header excluded)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pipeline.io.rows import LONE_SURROGATE, READ_ERRORS, RawRow, ReadStats


def read_csv(fh: IO[bytes], rel: str, limit: int, stats: ReadStats) -> Iterator[RawRow]:
    csv.field_size_limit(max(limit, csv.field_size_limit()))
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text)
    header: list[str] | None = None
    row_no = 0  # data rows, header excluded: a quoted field may span several lines
    while True:
        start = row_no + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row_no += 1
            stats.lines += 1
            reason = "oversize_line" if "field larger" in str(exc) else "invalid_csv"
            yield RawRow(rel, start, "", reason=reason, detail=f"CSV: {exc}")
            continue
        except READ_ERRORS as exc:
            stats.lines += 1
            yield RawRow(rel, start, "", reason="read_error", detail=f"cannot read: {exc}")
            return
        if header is None:
            header = row
            continue
        row_no += 1
        stats.lines += 1
        if not any(cell.strip() for cell in row):
            stats.blank += 1
            continue
        yield _csv_row(header, row, rel, start)


def _csv_row(header: list[str], row: list[str], rel: str, line: int) -> RawRow:
    # The cells stand in for the raw text; it is formatted only if the row is rejected.
    if any(LONE_SURROGATE.search(cell) for cell in row):
        return RawRow(
            rel, line, row, reason="invalid_utf8", detail="invalid UTF-8 bytes", header=header
        )
    if len(row) != len(header):
        return RawRow(
            rel, line, row, reason="invalid_csv",
            detail=f"CSV: {len(row)} fields, the header has {len(header)}", header=header,
        )  # fmt: skip
    return RawRow(rel, line, row, dict(zip(header, row, strict=True)), from_text=True)


def read_parquet(file: Path, rel: str, stats: ReadStats) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    row_no = 0
    try:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=8192):
            for value in batch.to_pylist():
                row_no += 1
                stats.lines += 1
                yield RawRow(rel, row_no, None, value)
    except (pa.ArrowException, *READ_ERRORS) as exc:
        stats.lines += 1
        yield RawRow(rel, row_no + 1, "", reason="read_error", detail=f"cannot read Parquet: {exc}")
