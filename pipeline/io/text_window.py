"""A sliding window over a text stream, for the JSON-array reader and its recovery."""

from __future__ import annotations

import io
import json
import re
from typing import IO, Any

from pipeline.io.json_rows import reject_constant
from pipeline.io.rows import RAW_KEEP

# Characters read at a time. A read grows to the size of the element being read, so a big
# element is read in a few doublings, not re-parsed once per chunk. Small, so that a decode
# error, whose message counts the lines before it in the window, stays cheap.
CHUNK_CHARS = 1 << 14
_WS = " \t\r\n"
_NON_WS = re.compile(r"[^ \t\r\n]")
# A decode error further than this from the end of the text read so far is not caused by
# the end of the window (the longest token, -Infinity, has 9 characters).
_MARGIN = 16


class TextWindow:
    """The text from `start` (the first character of what is being read) onwards; `pos`
    is the read position. Text before `start` is dropped on the next read."""

    def __init__(self, fh: IO[bytes], limit: int) -> None:
        # surrogateescape keeps invalid bytes visible (as lone surrogates) so one bad
        # element is rejected alone instead of failing the whole file.
        self.text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape")
        self.decoder = json.JSONDecoder(parse_constant=reject_constant)
        self.limit = limit  # the longest value worth reading on for, in characters
        self.buf, self.start, self.pos, self.eof = "", 0, 0, False

    def fill(self) -> bool:
        """Read more, dropping the text before `start`; False at the end of the file."""
        held = len(self.buf) - self.start
        chunk = self.text.read(max(CHUNK_CHARS, held))
        self.buf = self.buf[self.start :] + chunk
        self.pos -= self.start
        self.start = 0
        self.eof = not chunk
        return bool(chunk)

    def skip_ws(self) -> str:
        """Move `pos` past whitespace; the character there ('' at the end of the file)."""
        while True:
            buf, pos = self.buf, self.pos
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            self.pos = pos
            if pos < len(buf):
                return buf[pos]
            if not self.fill():
                return ""

    def peek(self, off: int) -> str:
        """The first non-whitespace character at or after `start + off` ('' at the end)."""
        while True:
            match = _NON_WS.search(self.buf, self.start + off)
            if match is not None:
                return match.group()
            off = len(self.buf) - self.start
            if not self.fill():
                return ""

    def decode(self, off: int) -> tuple[Any, int] | Exception:
        """(value, end offset) of the JSON value at `start + off`, or why it does not parse.
        Reads on while the value may just be incomplete, up to `limit` characters."""
        while True:
            at = self.start + off
            try:
                value, end = self.decoder.raw_decode(self.buf, at)
                if end < len(self.buf) or self.eof:
                    return value, end - self.start
            except (ValueError, RecursionError) as exc:
                bad = surely_bad(exc, len(self.buf))
                if self.eof or len(self.buf) - at > self.limit or bad:
                    return exc
            self.fill()

    def consume_rest(self) -> tuple[str, int]:
        """The first RAW_KEEP characters from `start` to the end of the file, and its size."""
        head = self.buf[self.start : self.start + RAW_KEEP]
        size = len(self.buf) - self.start
        self.start = self.pos = len(self.buf)
        while self.fill():
            if len(head) < RAW_KEEP:
                head += self.buf[: RAW_KEEP - len(head)]
            size += len(self.buf)
            self.start = self.pos = len(self.buf)
        return head, size


def surely_bad(exc: Exception, length: int) -> bool:
    """Whether a decode error of text `length` characters long is there whatever follows."""
    if not isinstance(exc, json.JSONDecodeError):
        return True  # NaN, a too-long integer, nesting too deep
    if exc.msg.startswith("Unterminated string"):
        return False
    return exc.pos < length - _MARGIN
