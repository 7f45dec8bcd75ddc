"""The JSON-array reader: one `RawRow` per element, streamed a chunk at a time.

A malformed element costs that element only, where the text allows it
(`pipeline.io.json_recover`): it becomes one counted `invalid_json` row with its element
number, and reading goes on with the next element. Text that no element can be recovered
from is one row to the end of the file, never dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from pipeline.io.json_recover import skip_malformed
from pipeline.io.json_rows import has_lone_surrogate
from pipeline.io.rows import LONE_SURROGATE, READ_ERRORS, SURROGATE_ESCAPE, RawRow, ReadStats
from pipeline.io.text_window import TextWindow

_UNCLOSED = "invalid JSON: the file ends before the array's closing ']'"


def read_json_array(fh: IO[bytes], rel: str, limit: int, stats: ReadStats) -> Iterator[RawRow]:
    """One row per array element; malformed text becomes counted `invalid_json` rows."""
    reader = _ArrayReader(fh, rel, limit, stats)
    try:
        yield from reader.rows()
    except READ_ERRORS as exc:
        yield reader.row("", "read_error", f"cannot read: {exc}")


class _ArrayReader(TextWindow):
    def __init__(self, fh: IO[bytes], rel: str, limit: int, stats: ReadStats) -> None:
        super().__init__(fh, limit)
        self.rel, self.stats = rel, stats
        self.number = 0  # rows yielded: elements, malformed ones included
        self.done = False  # a malformed row took the rest of the file

    def rows(self) -> Iterator[RawRow]:
        first = self.skip_ws()
        if first == "":  # an empty file holds no rows
            return
        if first != "[":
            hint = " (JSON Lines? name the file .jsonl)" if first == "{" else ""
            head, size = self.consume_rest()
            yield self.row(head, "invalid_json", (
                f"invalid JSON: a .json file must hold one array of objects{hint}; "
                f"the whole file ({size} characters) is rejected as this row"
            ))  # fmt: skip
            return
        self.pos += 1
        while True:
            self.start = self.pos  # whitespace read from here on may be dropped
            char = self.skip_ws()
            self.start = self.pos
            if char == "":
                yield self.row("", "invalid_json", _UNCLOSED)
                return
            if char == "]":  # after '[', an element, or a trailing ',' (which loses nothing)
                self.pos += 1
                if self.skip_ws() == "":
                    return
                self.start = self.pos  # text after the array: recover elements from it
                row = self.malformed("text after the array's closing ']'")
            else:
                row = self.element()
            yield row
            if self.done:
                return

    def element(self) -> RawRow:
        """The element at `start`; `pos` is left on the next one (or a ']')."""
        result = self.decode(0)
        if isinstance(result, tuple):
            value, end = result
            self.pos = self.start + end
            sep = self.skip_ws()
            if sep in (",", "]", ""):  # at the end of the file, the loop says it is unclosed
                self.pos += sep == ","
                return self.element_row(self.buf[self.start : self.start + end], value)
            problem = f"expected ',' or ']' after the value, found {sep!r}"
        elif isinstance(result, json.JSONDecodeError):
            where = result.pos - self.start + 1
            problem = f"{result.msg} (character {where} of the element)"
        else:
            problem = str(result) or type(result).__name__
        return self.malformed(problem)

    def malformed(self, problem: str) -> RawRow:
        """The malformed text at `start` as one row; `pos` is left where reading goes on."""
        detail = f"invalid JSON in array element {self.number + 1}: {problem}"
        skipped = skip_malformed(self)
        if skipped.how == "skipped":
            detail += f"; {skipped.size} characters skipped to the next element that parses"
        elif skipped.how == "rest":
            self.done = True
            detail += (
                f"; no later element could be recovered: the rest of the file "
                f"({skipped.size} characters) is rejected as this row"
            )
        return self.row(skipped.head, "invalid_json", detail)

    def row(self, raw: str, reason: str, detail: str) -> RawRow:
        """A row that is not an element's value, counted."""
        self.number += 1
        self.stats.lines += 1
        return RawRow(self.rel, self.number, raw, reason=reason, detail=detail)

    def element_row(self, element: str, value: Any) -> RawRow:
        """A parsed element's row, counted; rejected if too long, not an object, or with
        invalid bytes or an unpaired surrogate."""
        self.number += 1
        self.stats.lines += 1
        rel, number, limit = self.rel, self.number, self.limit
        if len(element) > limit:
            return RawRow(
                rel, number, element, reason="oversize_line",
                detail=f"element of {len(element)} characters > "
                f"dedup.validate.max_line_bytes={limit}",
            )  # fmt: skip
        # isascii() is O(1): most elements skip the scan for invalid bytes.
        if not element.isascii() and LONE_SURROGATE.search(element):
            return RawRow(rel, number, element, reason="invalid_utf8", detail="invalid UTF-8 bytes")
        if not isinstance(value, dict):
            return RawRow(
                rel, number, element, reason="not_an_object",
                detail=f"expected a JSON object, got {type(value).__name__}",
            )  # fmt: skip
        if SURROGATE_ESCAPE.search(element) and has_lone_surrogate(value):
            detail = "unpaired surrogate"
            return RawRow(rel, number, element, reason="invalid_unicode", detail=detail)
        return RawRow(rel, number, element, value)
