"""The record: one prompt/response pair with its metadata, defined once in `FIELDS`.

The Arrow schema (`arrow_schema`), the store's DDL (`pipeline.store.schema`) and the store's
SELECT lists (`pipeline.store.rows`) are all derived from `FIELDS`; `Record` is checked
against it at import. This module imports no pyarrow: `pipeline search` start-up reads the
field names through it and must stay light (pyarrow costs ~56 ms).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True, slots=True)
class Field:
    """One column of the record: name, Arrow type, DuckDB type, and whether it may be null."""

    name: str
    arrow: str  # a key of _ARROW_TYPES
    sql: str
    nullable: bool = True
    user: bool = True  # a user can map it from their files (conf/data/*.yaml)


# metadata is JSON text so it survives Parquet and DuckDB without a fixed struct.
FIELDS: tuple[Field, ...] = (
    Field("rid", "int64", "BIGINT", nullable=False, user=False),  # the FAISS vector id
    Field("id", "string", "VARCHAR", nullable=False),
    Field("prompt", "string", "VARCHAR", nullable=False),
    Field("response", "string", "VARCHAR"),
    Field("label", "string", "VARCHAR"),
    Field("user_id", "string", "VARCHAR"),
    Field("session_id", "string", "VARCHAR"),
    Field("parent_id", "string", "VARCHAR"),
    Field("turn", "int32", "INTEGER"),
    Field("created_at", "timestamp_us_utc", "TIMESTAMPTZ"),
    Field("quality", "float64", "DOUBLE"),
    Field("tags", "list_string", "VARCHAR[]"),
    Field("origin", "string", "VARCHAR", nullable=False),
    Field("source", "string", "VARCHAR"),
    Field("metadata", "string", "VARCHAR"),
    Field("file", "string", "VARCHAR", nullable=False, user=False),  # provenance
    Field("line", "int64", "BIGINT", nullable=False, user=False),
)
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)

# A removed duplicate is a record plus what it duplicates and how it was found.
DUPLICATE_FIELDS: tuple[Field, ...] = (
    *FIELDS,
    Field("duplicate_of", "string", "VARCHAR", nullable=False, user=False),  # the kept id
    Field("duplicate_of_rid", "int64", "BIGINT", nullable=False, user=False),
    Field("method", "string", "VARCHAR", nullable=False, user=False),  # 'exact' or 'near'
    # 1.0 for exact; true Jaccard for near
    Field("similarity", "float64", "DOUBLE", nullable=False, user=False),
)

# A filtered record is a record plus the quality filter it failed and by how much.
FILTERED_FIELDS: tuple[Field, ...] = (
    *FIELDS,
    Field("filter", "string", "VARCHAR", nullable=False, user=False),  # e.g. 'top_ngram'
    Field("value", "float64", "DOUBLE", nullable=False, user=False),  # what it measured
    Field("threshold", "float64", "DOUBLE", nullable=False, user=False),  # the bound broken
    Field("bound", "string", "VARCHAR", nullable=False, user=False),  # min, max or language
    Field("detail", "string", "VARCHAR", user=False),  # the field, and e.g. n=3, language=zh
)

# Fields a user can map from their files (conf/data/*.yaml). Only `prompt` is required.
USER_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.user)

# What readers of a kept record get back: everything but its provenance (file, line).
RESULT_FIELDS: tuple[str, ...] = ("rid", *USER_FIELDS)

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


def check_fields(cls: type, names: tuple[str, ...] = FIELD_NAMES) -> None:
    """Raise TypeError unless the dataclass `cls` has exactly these fields, in this order."""
    got = tuple(f.name for f in dataclasses.fields(cls))
    if got != names:
        raise TypeError(f"{cls.__name__} fields {got} differ from the record table {names}")


check_fields(Record)

_ARROW_TYPES = {
    "int32": lambda pa: pa.int32(),
    "int64": lambda pa: pa.int64(),
    "float64": lambda pa: pa.float64(),
    "string": lambda pa: pa.string(),
    "list_string": lambda pa: pa.list_(pa.string()),
    "timestamp_us_utc": lambda pa: pa.timestamp("us", tz="UTC"),
}


@cache
def arrow_schema(fields: tuple[Field, ...] = FIELDS) -> pa.Schema:
    """The Arrow schema of these fields (by default the record: records.parquet, staging)."""
    import pyarrow as pa

    # Every Arrow field stays nullable, as records.parquet has always been written: DuckDB
    # enforces NOT NULL when the stage inserts, and a `required` field would change the
    # file's schema for every reader.
    return pa.schema([(f.name, _ARROW_TYPES[f.arrow](pa)) for f in fields])


def __getattr__(name: str) -> Any:
    # `RECORD_SCHEMA` stays importable by name, but pyarrow loads only when it is used.
    if name == "RECORD_SCHEMA":
        return arrow_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
