"""A raw row's user id, read leniently: the erasure list applies before validation.

A row that will not validate (broken JSON, a CSV row with the wrong number of cells, a
missing prompt) still belongs to a user; the dedup stage must drop it when that user is
erased, and otherwise store the hash of its user id beside the rejected row so `pipeline
erase` finds it. The id is read through the dataset's field map from the parsed object,
by a pattern on the mapped key from broken JSON text, or by the header's column position
from a malformed CSV row. A conversation (`messages`, `conversations`) also names its user
by the export's own column (`user`, OpenAI's), as its turn records will.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pipeline.dedup.shapes.conversation import ALIASES
from pipeline.dedup.validate import FieldMap
from pipeline.io.rows import RawRow

_CONVERSATION_KEYS = ("messages", "conversations")


def _usable(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


class UserIdReader:
    """`reader(row)`: the user id of a raw row, or None when none can be read."""

    def __init__(self, fields: FieldMap) -> None:
        self.columns = [c for c, name in fields.column_to_field.items() if name == "user_id"]
        # The alias only where the field map does not send that column to another field.
        aliases = [a for a in ALIASES["user_id"] if a not in fields.column_to_field]
        self.conversation_columns = self.columns + aliases
        # "<column>": "<JSON string>" or an integer, anywhere in the text.
        self.patterns = [_pattern(c) for c in self.columns]
        self.conversation_patterns = [_pattern(c) for c in self.conversation_columns]

    def __call__(self, row: RawRow) -> str | None:
        if isinstance(row.value, Mapping):
            conversation = any(key in row.value for key in _CONVERSATION_KEYS)
            columns = self.conversation_columns if conversation else self.columns
            return next((v for c in columns if (v := _usable(row.value.get(c)))), None)
        raw = row.raw
        if isinstance(raw, list):
            return self._from_cells(raw, row.header or [])
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        return self._from_text(raw) if isinstance(raw, str) and raw else None

    def _from_cells(self, cells: list[str], header: list[str]) -> str | None:
        for column in self.columns:
            if column in header and header.index(column) < len(cells):
                value = cells[header.index(column)].strip()
                if value:
                    return value
        return None

    def _from_text(self, text: str) -> str | None:
        conversation = any(f'"{key}"' in text for key in _CONVERSATION_KEYS)
        for pattern in self.conversation_patterns if conversation else self.patterns:
            for match in pattern.finditer(text):
                try:
                    value = _usable(json.loads(match.group(1)))
                except ValueError:  # an invalid escape inside the string
                    continue
                if value is not None:
                    return value
        return None


def _pattern(column: str) -> re.Pattern[str]:
    return re.compile(rf'"{re.escape(json.dumps(column)[1:-1])}"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)')
