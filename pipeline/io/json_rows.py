"""The JSON Lines reader (one `RawRow` per line) and the JSON parsing both JSON readers share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from pipeline.io.rows import READ_ERRORS, SURROGATE_ESCAPE, RawRow, ReadStats

_BOM = b"\xef\xbb\xbf"


def parse_json_object(text: str) -> tuple[Any, str | None, str]:
    """Parse one JSON value: (value, None, "") or (None, reason, detail)."""
    try:
        value = json.loads(text, parse_constant=reject_constant)
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, over-long integers
        return None, "invalid_json", f"invalid JSON: {exc}"
    except RecursionError:
        return None, "invalid_json", "invalid JSON: nested too deeply"
    if not isinstance(value, dict):
        return None, "not_an_object", f"expected a JSON object, got {type(value).__name__}"
    if SURROGATE_ESCAPE.search(text) and has_lone_surrogate(value):
        return None, "invalid_unicode", "a string holds an unpaired UTF-16 surrogate escape"
    return value, None, ""


def reject_constant(name: str) -> Any:
    """json's parse_constant hook: NaN, Infinity and -Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def has_lone_surrogate(value: Any) -> bool:
    """Whether a parsed value holds an unpaired UTF-16 surrogate (from a JSON escape)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_jsonl(fh: IO[bytes], rel: str, limit: int, stats: ReadStats) -> Iterator[RawRow]:
    line_no = 0
    while True:
        try:
            line = fh.readline(limit + 1)
        except READ_ERRORS as exc:
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
