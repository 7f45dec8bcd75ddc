"""The record: one prompt/response pair with its metadata, and its columnar schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

# Fields a user can map from their files (conf/data/*.yaml). Only `prompt` is required.
USER_FIELDS: tuple[str, ...] = (
    "id",
    "prompt",
    "response",
    "label",
    "user_id",
    "session_id",
    "parent_id",
    "turn",
    "created_at",
    "quality",
    "tags",
    "origin",
    "source",
    "metadata",
)

ORIGINS: tuple[str, ...] = ("real", "synthetic")


@dataclass(slots=True)
class Record:
    """A validated, redacted record as the dedup stage stores it."""

    rid: int  # stable 63-bit integer key derived from `id`: the FAISS vector id
    id: str  # the user's id, or `<file name>:<line>` when the file has none
    prompt: str
    response: str | None = None
    label: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    parent_id: str | None = None
    turn: int | None = None
    created_at: datetime | None = None
    quality: float | None = None
    tags: list[str] = field(default_factory=list)
    origin: str = "real"
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    file: str = ""  # provenance: input file (relative path) and 1-based line or row
    line: int = 0


# Arrow schema shared by the store tables and records.parquet; metadata is JSON text so it
# survives Parquet and DuckDB without a fixed struct.
RECORD_SCHEMA = pa.schema(
    [
        ("rid", pa.int64()),
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("response", pa.string()),
        ("label", pa.string()),
        ("user_id", pa.string()),
        ("session_id", pa.string()),
        ("parent_id", pa.string()),
        ("turn", pa.int32()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("quality", pa.float64()),
        ("tags", pa.list_(pa.string())),
        ("origin", pa.string()),
        ("source", pa.string()),
        ("metadata", pa.string()),
        ("file", pa.string()),
        ("line", pa.int64()),
    ]
)
