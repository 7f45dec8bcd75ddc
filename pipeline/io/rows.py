"""One input row as the readers yield it, and what the readers saw."""

from __future__ import annotations

import csv
import io
import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

RAW_KEEP = 100_000  # characters of a rejected row's raw text that are stored
# JSON escapes of UTF-16 surrogates: only lines with one need the slower encodability check.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
READ_ERRORS = (OSError, EOFError, zlib.error)


@dataclass(slots=True)
class RawRow:
    """One input row: the parsed value, or why it could not be parsed."""

    file: str  # path relative to the dataset root (posix)
    line: int
    raw: str | bytes | list[str] | None  # CSV cells; None: rebuild from `value` (Parquet)
    value: Any = None
    reason: str | None = None
    detail: str = ""
    from_text: bool = False  # CSV: every value is a string and is coerced by type
    header: list[str] | None = None  # CSV: the column names, to read a malformed row's cells

    def raw_text(self) -> str:
        """The row as text for the `rejected` table (invalid bytes escaped, long rows cut)."""
        if self.raw is None:
            text = json.dumps(self.value, ensure_ascii=False, sort_keys=True, default=str)
        elif isinstance(self.raw, bytes):
            text = self.raw[: RAW_KEEP * 4].decode("utf-8", "backslashreplace")
        elif isinstance(self.raw, list):  # CSV cells
            out = io.StringIO()
            csv.writer(out, lineterminator="").writerow(self.raw)
            text = _escape_undecodable(out.getvalue())
        else:
            text = _escape_undecodable(self.raw)
        text = LONE_SURROGATE.sub("\ufffd", text)
        return text[:RAW_KEEP]


@dataclass
class ReadStats:
    """What the readers saw, for the stage report."""

    files: list[str] = field(default_factory=list)
    lines: int = 0  # physical lines or rows, blank ones included
    blank: int = 0


def _escape_undecodable(text: str) -> str:
    """Show bytes that were not UTF-8 (kept by `surrogateescape`) as `\\xNN`."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # other lone surrogates: replaced by the caller
        return text
