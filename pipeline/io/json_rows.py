"""The JSON Lines reader (one `RawRow` per line) and the JSON parsing both JSON readers share."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from pipeline.io.rows import READ_ERRORS, SURROGATE_ESCAPE, RawRow, ReadStats

_BOM = b"\xef\xbb\xbf"
_SPACE = b" \t\r\n\x0b\x0c"  # what bytes.strip() removes


def parse_json_object(text: str) -> tuple[Any, str | None, str]:
    """Parse one JSON value: (value, None, "") or (None, reason, detail)."""
    try:
        value = _DECODER.decode(text)
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


# One decoder for every line: json.loads(text, parse_constant=...) would build a new one
# (and its scanner) per call, which cost about a third of the JSON Lines read time.
_DECODER = json.JSONDecoder(parse_constant=reject_constant)


def has_lone_surrogate(value: Any) -> bool:
    """Whether a parsed value holds an unpaired UTF-16 surrogate (from a JSON escape)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_jsonl(fh: IO[bytes], rel: str, limit: int, stats: ReadStats) -> Iterator[RawRow]:
    """One row per physical line; a line ends at LF, CRLF or a lone CR, as in an editor (a
    raw CR cannot be inside a JSON string, where it is escaped, so a lone one ends a line)."""
    splitter = _LineSplitter(limit)
    line_no = 0
    while True:
        try:
            block = fh.readline(limit + 1)  # ends at LF, after limit + 1 bytes, or at the end
        except READ_ERRORS as exc:
            stats.lines += 1
            yield RawRow(rel, line_no + 1, b"", reason="read_error", detail=f"cannot read: {exc}")
            return
        if splitter.idle and block.endswith(b"\n") and block.find(b"\r", 0, -2) < 0:
            line = block.rstrip(b"\r\n")  # the common case: one whole line, LF or CRLF
            lines: Iterable[tuple[bytes, int]] = ((line, len(line)),)
        else:
            lines = splitter.feed(block) if block else splitter.finish()
        for line, size in lines:
            line_no += 1
            stats.lines += 1
            if size > limit:
                yield RawRow(
                    rel, line_no, line, reason="oversize_line",
                    detail=f"line of {size} bytes > dedup.validate.max_line_bytes={limit}",
                )  # fmt: skip
                continue
            if line.startswith(_BOM):  # a BOM is not an error, on any line
                line = line[3:]
            # Only a line that starts with whitespace can be blank: no copy by strip().
            if not line or (line[0] in _SPACE and not line.strip()):
                stats.blank += 1
                continue
            yield _parse_json_bytes(line, rel, line_no)
        if not block:
            return


class _LineSplitter:
    """Lines from the reads that are not one whole line: a lone CR inside, or a line longer
    than one read. Of a line longer than `limit`, only the first limit + 1 bytes are kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.carry, self.size = b"", 0  # the start of a line whose end is not read yet
        self.after_cr = False  # the last read ended with CR: a LF first in the next is its pair

    @property
    def idle(self) -> bool:
        """Nothing pending: the next read starts a line."""
        return not self.size and not self.after_cr

    def feed(self, block: bytes) -> list[tuple[bytes, int]]:
        """(line without its line break, its size in bytes) of each line this read ends."""
        if self.after_cr and block.startswith(b"\n"):
            block = block[1:]
        self.after_cr = block.endswith(b"\r")
        ended = block.splitlines()  # at LF, CRLF and CR only (bytes, unlike str)
        tail = ended.pop() if ended and not block.endswith((b"\n", b"\r")) else b""
        out = []
        for piece in ended:
            if self.size:
                out.append(((self.carry + piece)[: self.limit + 1], self.size + len(piece)))
                self.carry, self.size = b"", 0
            else:
                out.append((piece, len(piece)))
        if tail:
            if len(self.carry) <= self.limit:
                self.carry = (self.carry + tail)[: self.limit + 1]
            self.size += len(tail)
        return out

    def finish(self) -> list[tuple[bytes, int]]:
        """The last line, if the file does not end with a line break."""
        return [(self.carry, self.size)] if self.size else []


def _parse_json_bytes(line: bytes, rel: str, line_no: int) -> RawRow:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RawRow(rel, line_no, line, reason="invalid_utf8", detail=f"invalid UTF-8: {exc}")
    value, reason, detail = parse_json_object(text)
    return RawRow(rel, line_no, text, value, reason, detail)
