"""JSON Lines and JSON-array readers: one `RawRow` per line or array element."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import IO, Any

from pipeline.io.rows import (
    LONE_SURROGATE,
    RAW_KEEP,
    READ_ERRORS,
    SURROGATE_ESCAPE,
    RawRow,
    ReadStats,
)

_BOM = b"\xef\xbb\xbf"
CHUNK_CHARS = 1 << 20  # JSON-array read size; an element may span any number of chunks


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
    if SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
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


def read_json_array(fh: IO[bytes], rel: str, limit: int, stats: ReadStats) -> Iterator[RawRow]:
    # surrogateescape keeps invalid bytes visible (as lone surrogates) so one bad element is
    # rejected alone instead of failing the whole file.
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape")
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    buf, pos, eof, index = "", 0, False, 0

    def fill() -> bool:
        nonlocal buf, pos, eof
        chunk = text.read(CHUNK_CHARS)
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
        rest = buf[pos : pos + RAW_KEEP]
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
    except READ_ERRORS as exc:
        stats.lines += 1
        yield RawRow(rel, index + 1, "", reason="read_error", detail=f"cannot read: {exc}")


def _json_element(element: str, value: Any, rel: str, index: int, limit: int) -> RawRow:
    if len(element) > limit:
        return RawRow(
            rel, index, element, reason="oversize_line",
            detail=f"element of {len(element)} characters > dedup.validate.max_line_bytes={limit}",
        )  # fmt: skip
    if LONE_SURROGATE.search(element):
        return RawRow(rel, index, element, reason="invalid_utf8", detail="invalid UTF-8 bytes")
    if not isinstance(value, dict):
        return RawRow(
            rel, index, element, reason="not_an_object",
            detail=f"expected a JSON object, got {type(value).__name__}",
        )  # fmt: skip
    if SURROGATE_ESCAPE.search(element) and _has_lone_surrogate(value):
        return RawRow(rel, index, element, reason="invalid_unicode", detail="unpaired surrogate")
    return RawRow(rel, index, element, value)
