"""Arrow schemas and tables of what the dedup stage stages: records, rejections, preferences."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipeline.record import RECORD_SCHEMA, Record

DUPLICATE_SCHEMA = RECORD_SCHEMA.append(pa.field("duplicate_of", pa.string())).append(
    pa.field("duplicate_of_rid", pa.int64())
)
DUPLICATE_SCHEMA = DUPLICATE_SCHEMA.append(pa.field("method", pa.string())).append(
    pa.field("similarity", pa.float64())
)
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
    """The records as columns in RECORD_SCHEMA order."""
    return {
        "rid": [r.rid for r in records],
        "id": [r.id for r in records],
        "prompt": [r.prompt for r in records],
        "response": [r.response for r in records],
        "label": [r.label for r in records],
        "user_id": [r.user_id for r in records],
        "session_id": [r.session_id for r in records],
        "parent_id": [r.parent_id for r in records],
        "turn": [r.turn for r in records],
        "created_at": [r.created_at for r in records],
        "quality": [r.quality for r in records],
        "tags": [r.tags for r in records],
        "origin": [r.origin for r in records],
        "source": [r.source for r in records],
        "metadata": [metadata_json(r.metadata) for r in records],
        "file": [r.file for r in records],
        "line": [r.line for r in records],
    }


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
