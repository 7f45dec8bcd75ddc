"""Streaming readers for the input formats: .jsonl[.gz], .json[.gz] (array), .csv[.gz], .parquet.

Each reader yields one `RawRow` per input row with its file and 1-based position: the
physical line for JSON Lines, the data row (header excluded) for CSV, JSON arrays and
Parquet. A row that cannot be parsed carries a reason code instead of a value; reading
goes on with the next row. Nothing is held beyond
the current row (or Parquet batch), so a file larger than memory is fine.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pipeline.errors import UserInputError

SUFFIXES: tuple[str, ...] = (
    ".jsonl",
    ".jsonl.gz",
    ".json",
    ".json.gz",
    ".csv",
    ".csv.gz",
    ".parquet",
)
_BOM = b"\xef\xbb\xbf"
_RAW_KEEP = 100_000  # characters of a rejected row's raw text that are stored
# JSON escapes of UTF-16 surrogates: only lines with one need the slower encodability check.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_READ_ERRORS = (OSError, EOFError, zlib.error)
_CHUNK_CHARS = 1 << 20  # JSON-array read size; an element may span any number of chunks


@dataclass(slots=True)
class RawRow:
    """One input row: the parsed value, or why it could not be parsed."""

    file: str  # path relative to the dataset root (posix)
    line: int
    raw: str | bytes | None  # None: rebuild from `value` when needed (Parquet)
    value: Any = None
    reason: str | None = None
    detail: str = ""
    from_text: bool = False  # CSV: every value is a string and is coerced by type

    def raw_text(self) -> str:
        """The row as text for the `rejected` table (invalid bytes escaped, long rows cut)."""
        if self.raw is None:
            text = json.dumps(self.value, ensure_ascii=False, sort_keys=True, default=str)
        elif isinstance(self.raw, bytes):
            text = self.raw[: _RAW_KEEP * 4].decode("utf-8", "backslashreplace")
        else:
            text = self.raw
        text = _LONE_SURROGATE.sub("\ufffd", text)
        return text[:_RAW_KEEP]


@dataclass
class ReadStats:
    """What the readers saw, for the stage report."""

    files: list[str] = field(default_factory=list)
    lines: int = 0  # physical lines or rows, blank ones included
    blank: int = 0


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
        yield from _read_parquet(file, rel, stats)
        return
    with _open(file) as fh:
        if name.endswith(".jsonl"):
            yield from _read_jsonl(fh, rel, max_line_bytes, stats)
        elif name.endswith(".json"):
            yield from _read_json_array(fh, rel, max_line_bytes, stats)
        else:
            yield from _read_csv(fh, rel, max_line_bytes, stats)


def _open(file: Path) -> IO[bytes]:
    if file.name.endswith(".gz"):
        return gzip.open(file, "rb")
    return file.open("rb")


def parse_json_object(text: str) -> tuple[Any, str | None, str]:
    """Parse one JSON value: (value, None, "") or (None, reason, detail)."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, over-long integers
        return None, "invalid_json", f"invalid JSON: {exc}"
    except RecursionError:
        return None, "invalid_json", "invalid JSON: nested too deeply"
    if not isinstance(value, dict):
        return None, "not_an_object", f"expected a JSON object, got {type(value).__name__}"
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        return None, "invalid_unicode", "a string holds an unpaired UTF-16 surrogate escape"
    return value, None, ""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _read_jsonl(fh: IO[bytes], rel: str, limit: int, stats: ReadStats) -> Iterator[RawRow]:
    line_no = 0
    while True:
        try:
            line = fh.readline(limit + 1)
        except _READ_ERRORS as exc:
            stats.lines += 1
            yield RawRow(rel, line_no + 1, b"", reason="read_error", detail=f"cannot read: {exc}")
            return
        if not line:
            return
        line_no += 1
        stats.lines += 1
        if len(line) > limit and not line.endswith(b"\n"):
            size = len(line) + _drain_line(fh)
            yield RawRow(
                rel, line_no, line, reason="oversize_line",
                detail=f"line of {size} bytes > dedup.validate.max_line_bytes={limit}",
            )  # fmt: skip
            continue
        if line.startswith(_BOM):  # a BOM is not an error, on any line
            line = line[3:]
        line = line.rstrip(b"\r\n")
        if not line.strip():
            stats.blank += 1
            continue
        yield _parse_json_bytes(line, rel, line_no)


def _drain_line(fh: IO[bytes]) -> int:
    """Skip the rest of an oversize line without holding it; return the bytes skipped."""
    skipped = 0
    while True:
        chunk = fh.readline(1 << 20)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def _parse_json_bytes(line: bytes, rel: str, line_no: int) -> RawRow:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RawRow(rel, line_no, line, reason="invalid_utf8", detail=f"invalid UTF-8: {exc}")
    value, reason, detail = parse_json_object(text)
    return RawRow(rel, line_no, text, value, reason, detail)


def _read_json_array(fh: IO[bytes], rel: str, limit: int, stats: ReadStats) -> Iterator[RawRow]:
    # surrogateescape keeps invalid bytes visible (as lone surrogates) so one bad element is
    # rejected alone instead of failing the whole file.
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape")
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    buf, pos, eof, index = "", 0, False, 0

    def fill() -> bool:
        nonlocal buf, pos, eof
        chunk = text.read(_CHUNK_CHARS)
        buf, pos = buf[pos:] + chunk, 0
        eof = not chunk
        return bool(chunk)

    def skip_ws() -> str:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf) or not fill():
                return buf[pos] if pos < len(buf) else ""

    def fail(detail: str) -> RawRow:
        stats.lines += 1
        rest = buf[pos : pos + _RAW_KEEP]
        return RawRow(rel, index + 1, rest, reason="invalid_json", detail=detail)

    try:
        first = skip_ws()
        if first == "":  # an empty file holds no rows
            return
        if first != "[":
            yield fail("invalid JSON: a .json file must hold an array of objects")
            return
        pos += 1
        while True:
            if skip_ws() == "]" and index == 0:
                return
            while True:  # decode one element, reading more until it is complete
                try:
                    value, end = decoder.raw_decode(buf, pos)
                    if end < len(buf) or eof:
                        break
                except (ValueError, RecursionError) as exc:
                    if eof or len(buf) - pos > limit:
                        yield fail(f"invalid JSON in array element {index + 1}: {exc}")
                        return
                if not fill():
                    eof = True
            element = buf[pos:end]
            pos = end
            index += 1
            stats.lines += 1
            yield _json_element(element, value, rel, index, limit)
            sep = skip_ws()
            if sep == "]":
                return
            if sep != ",":
                yield fail(f"invalid JSON: expected ',' or ']' after element {index}")
                return
            pos += 1
    except _READ_ERRORS as exc:
        stats.lines += 1
        yield RawRow(rel, index + 1, "", reason="read_error", detail=f"cannot read: {exc}")


def _json_element(element: str, value: Any, rel: str, index: int, limit: int) -> RawRow:
    if len(element) > limit:
        return RawRow(
            rel, index, element, reason="oversize_line",
            detail=f"element of {len(element)} characters > dedup.validate.max_line_bytes={limit}",
        )  # fmt: skip
    if _LONE_SURROGATE.search(element):
        return RawRow(rel, index, element, reason="invalid_utf8", detail="invalid UTF-8 bytes")
    if not isinstance(value, dict):
        return RawRow(
            rel, index, element, reason="not_an_object",
            detail=f"expected a JSON object, got {type(value).__name__}",
        )  # fmt: skip
    if _SURROGATE_ESCAPE.search(element) and _has_lone_surrogate(value):
        return RawRow(rel, index, element, reason="invalid_unicode", detail="unpaired surrogate")
    return RawRow(rel, index, element, value)


def _read_csv(fh: IO[bytes], rel: str, limit: int, stats: ReadStats) -> Iterator[RawRow]:
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
        except _READ_ERRORS as exc:
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
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    raw = out.getvalue()
    if _LONE_SURROGATE.search(raw):
        return RawRow(rel, line, raw, reason="invalid_utf8", detail="invalid UTF-8 bytes")
    if len(row) != len(header):
        return RawRow(
            rel, line, raw, reason="invalid_csv",
            detail=f"CSV: {len(row)} fields, the header has {len(header)}",
        )  # fmt: skip
    return RawRow(rel, line, raw, dict(zip(header, row, strict=True)), from_text=True)


def _read_parquet(file: Path, rel: str, stats: ReadStats) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    row_no = 0
    try:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=8192):
            for value in batch.to_pylist():
                row_no += 1
                stats.lines += 1
                yield RawRow(rel, row_no, None, value)
    except (pa.ArrowException, *_READ_ERRORS) as exc:
        stats.lines += 1
        yield RawRow(rel, row_no + 1, "", reason="read_error", detail=f"cannot read Parquet: {exc}")
