"""Arrow schemas and tables of what the dedup stage stages: records, rejections, preferences."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipeline.record import DUPLICATE_FIELDS, FIELD_NAMES, Record, arrow_schema

DUPLICATE_SCHEMA = arrow_schema(DUPLICATE_FIELDS)
REJECTED_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("line", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("record_id", pa.string()),
        ("raw", pa.string()),
        ("user_hash", pa.string()),
    ]
)
PREFERENCE_SCHEMA = pa.schema(
    [("record_id", pa.string()), ("chosen", pa.string()), ("rejected", pa.string()),
     ("source", pa.string())]
)  # fmt: skip
PII_SCHEMA = pa.schema(
    [("record_id", pa.string()), ("field", pa.string()), ("pii_type", pa.string()),
     ("count", pa.int32())]
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that did not become a record: where it was, why, and its raw text."""

    file: str
    line: int
    reason: str
    detail: str
    record_id: str | None
    raw: str
    user_hash: str | None = None  # sha256 of the row's user id, when one could be read


def metadata_json(metadata: dict[str, Any]) -> str | None:
    """Metadata as canonical JSON text (sorted keys), or None when empty."""
    if not metadata:
        return None
    return json.dumps(metadata, ensure_ascii=False, sort_keys=True, default=str)


def record_columns(records: Sequence[Record]) -> dict[str, list[Any]]:
    """The records as columns in RECORD_SCHEMA order (metadata as JSON text)."""
    columns = {name: [getattr(r, name) for r in records] for name in FIELD_NAMES}
    columns["metadata"] = [metadata_json(m) for m in columns["metadata"]]
    return columns


def rejected_table(rejections: Sequence[Rejection]) -> pa.Table:
    """Rejected rows, in input order."""
    names = REJECTED_SCHEMA.names
    return pa.Table.from_pydict(
        {name: [getattr(r, name) for r in rejections] for name in names}, schema=REJECTED_SCHEMA
    )


def preferences_table(rows: Sequence[tuple[str, str, str, str | None]]) -> pa.Table:
    """(record_id, chosen, rejected, source) rows, in input order."""
    return pa.Table.from_pylist(
        [dict(zip(PREFERENCE_SCHEMA.names, row, strict=True)) for row in rows],
        schema=PREFERENCE_SCHEMA,
    )


def pii_table(rows: Sequence[tuple[str, str, str, int]]) -> pa.Table:
    """(record_id, field, pii_type, count) rows, in input order."""
    return pa.Table.from_pylist(
        [dict(zip(PII_SCHEMA.names, row, strict=True)) for row in rows], schema=PII_SCHEMA
    )
