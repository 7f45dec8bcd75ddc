"""What a shape reader returns, and the column mapping the readers share."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.dedup.validate import FieldMap
from pipeline.record import USER_FIELDS


@dataclass
class Expanded:
    """What one input row became: record rows (record field names), (record_id, chosen,
    rejected) preferences, and (reason, detail, record_id) for candidate records that were
    rejected inside the row (a conversation's malformed turn), each one input record."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    preferences: list[tuple[str, str, str]] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)


def by_field(
    row: Mapping[str, Any], fields: FieldMap, skip: Collection[str] = ()
) -> dict[str, Any]:
    """The row's columns under record field names (through the field map), unmapped columns
    under their own names (validation keeps them as metadata); `skip` columns left out."""
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for column, value in row.items():
        if column in skip:
            continue
        name = fields.column_to_field.get(column)
        if name is None:
            extra[str(column)] = value
        else:
            out[name] = value
    for column, value in extra.items():
        # An unmapped column named like a record field (the map sent that field elsewhere)
        # must not be read as the field: keep it as metadata under another name.
        out[f"{column}_column" if column in USER_FIELDS else column] = value
    return out


def take_alias(values: dict[str, Any], name: str, aliases: tuple[str, ...]) -> None:
    """Fill record field `name` from the first alias column present (OpenAI's `user`, a
    gateway's `conversation_id`), unless the field map already gave it a value."""
    for alias in aliases:
        if alias in values:
            value = values.pop(alias)
            if values.get(name) is None:
                values[name] = value
            return
