"""Streaming readers for the input formats: .jsonl[.gz], .json[.gz] (array), .csv[.gz], .parquet.

Each reader yields one `RawRow` per input row with its file and 1-based position: the
physical line for JSON Lines, the data row (header excluded) for CSV, JSON arrays and
Parquet. A row that cannot be parsed carries a reason code instead of a value; reading
goes on with the next row. Nothing is held beyond the current row (or Parquet batch), so a
file larger than memory streams through.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pipeline.errors import UserInputError
from pipeline.io.json_array import read_json_array
from pipeline.io.json_rows import read_jsonl
from pipeline.io.rows import RawRow, ReadStats
from pipeline.io.tabular import read_csv, read_parquet

__all__ = ["SUFFIXES", "RawRow", "ReadStats", "dataset_files", "read_dataset", "read_file"]

SUFFIXES: tuple[str, ...] = (
    ".jsonl",
    ".jsonl.gz",
    ".json",
    ".json.gz",
    ".csv",
    ".csv.gz",
    ".parquet",
)


def dataset_files(path: Path) -> list[tuple[Path, str]]:
    """Input files under `path` (a file or a directory) in sorted order, with relative names."""
    if path.is_file():
        if not path.name.endswith(SUFFIXES):
            raise UserInputError(f"data.path: {path}: unsupported format; expected {SUFFIXES}")
        return [(path, path.name)]
    if not path.is_dir():
        raise UserInputError(f"data.path: {path} does not exist")
    found = []
    for file in path.rglob("*"):
        rel = file.relative_to(path).as_posix()
        if file.is_file() and file.name.endswith(SUFFIXES) and not rel.startswith("."):
            found.append((file, rel))
    return sorted(found, key=lambda item: item[1])


def read_dataset(
    files: list[tuple[Path, str]], max_line_bytes: int, stats: ReadStats
) -> Iterator[RawRow]:
    """Every row of the given files (from `dataset_files`), in order."""
    for file, rel in files:
        stats.files.append(rel)
        yield from read_file(file, rel, max_line_bytes, stats)


def read_file(file: Path, rel: str, max_line_bytes: int, stats: ReadStats) -> Iterator[RawRow]:
    """Rows of one file, chosen by its suffix."""
    name = file.name.removesuffix(".gz")
    if name.endswith(".parquet"):
        yield from read_parquet(file, rel, stats)
        return
    with _open(file) as fh:
        if name.endswith(".jsonl"):
            yield from read_jsonl(fh, rel, max_line_bytes, stats)
        elif name.endswith(".json"):
            yield from read_json_array(fh, rel, max_line_bytes, stats)
        else:
            yield from read_csv(fh, rel, max_line_bytes, stats)


def _open(file: Path) -> IO[bytes]:
    if file.name.endswith(".gz"):
        return gzip.open(file, "rb")
    return file.open("rb")
