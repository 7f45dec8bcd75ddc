"""Streaming readers for the input formats: .jsonl[.gz], .json[.gz] (array), .csv[.gz], .parquet.

Each reader yields one `RawRow` per input row with its file and 1-based position: the
physical line for JSON Lines (a line ends at LF, CRLF or a lone CR, as in an editor), the
element for JSON arrays, the data row (header excluded) for CSV and Parquet. A row that
cannot be parsed carries a reason code instead of a value; reading goes on with the next
row. Nothing is held beyond the current row (or Parquet batch), so a file larger than
memory streams through. The behaviour is documented in docs/readers.md.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pipeline.errors import UserInputError
from pipeline.io.json_array import read_json_array
from pipeline.io.json_rows import read_jsonl
from pipeline.io.rows import RawRow, ReadStats
from pipeline.io.tabular import read_csv, read_parquet

__all__ = [
    "SUFFIXES",
    "DatasetScan",
    "RawRow",
    "ReadStats",
    "dataset_files",
    "read_dataset",
    "read_file",
    "scan_dataset",
]

# Matched without case; anything else under data.path is named in the report as skipped.
SUFFIXES: tuple[str, ...] = (
    ".jsonl",
    ".jsonl.gz",
    ".json",
    ".json.gz",
    ".csv",
    ".csv.gz",
    ".parquet",
)


@dataclass
class DatasetScan:
    """The input files under `data.path`, and every file there that is not read, with why."""

    files: list[tuple[Path, str]] = field(default_factory=list)  # (path, relative name)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}


def has_suffix(name: str) -> bool:
    """Whether a file name ends with a readable suffix, in any case (`A.JSONL`, `b.Json.GZ`)."""
    return name.lower().endswith(SUFFIXES)


def scan_dataset(path: Path) -> DatasetScan:
    """Input files under `path` (a file or a directory) in sorted order, and the files left
    out: an unsupported suffix, a hidden file or directory (its files counted), not a file."""
    if path.is_file():
        if not has_suffix(path.name):
            raise UserInputError(f"data.path: {path}: unsupported format; expected {SUFFIXES}")
        return DatasetScan([(path, path.name)])
    if not path.is_dir():
        raise UserInputError(f"data.path: {path} does not exist")
    scan = DatasetScan()
    hidden_dirs: dict[str, int] = {}
    for file in path.rglob("*"):
        if file.is_dir():
            continue
        parts = file.relative_to(path).parts
        rel = "/".join(parts)
        hidden = next((i for i, part in enumerate(parts) if part.startswith(".")), None)
        if hidden is not None and hidden < len(parts) - 1:
            folder = "/".join(parts[: hidden + 1]) + "/"
            hidden_dirs[folder] = hidden_dirs.get(folder, 0) + 1
        elif hidden is not None:
            scan.skipped.append({"path": rel, "reason": "hidden file"})
        elif not file.is_file():
            scan.skipped.append({"path": rel, "reason": "not a regular file (a broken link?)"})
        elif not has_suffix(file.name):
            scan.skipped.append({"path": rel, "reason": "unsupported format"})
        else:
            scan.files.append((file, rel))
    for folder, count in hidden_dirs.items():
        files = "file" if count == 1 else "files"
        scan.skipped.append({"path": folder, "reason": f"hidden directory ({count} {files})"})
    scan.files.sort(key=lambda item: item[1])
    scan.skipped.sort(key=lambda item: item["path"])
    return scan


def dataset_files(path: Path) -> list[tuple[Path, str]]:
    """Input files under `path` (a file or a directory) in sorted order, with relative names."""
    return scan_dataset(path).files


def read_dataset(
    files: list[tuple[Path, str]], max_line_bytes: int, stats: ReadStats
) -> Iterator[RawRow]:
    """Every row of the given files (from `dataset_files`), in order."""
    for file, rel in files:
        stats.files.append(rel)
        yield from read_file(file, rel, max_line_bytes, stats)


def read_file(file: Path, rel: str, max_line_bytes: int, stats: ReadStats) -> Iterator[RawRow]:
    """Rows of one file, chosen by its suffix."""
    name = file.name.lower().removesuffix(".gz")
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
    if file.name.lower().endswith(".gz"):
        return gzip.open(file, "rb")
    return file.open("rb")
