"""The one way record rows leave the store: the SELECT list, the row decoder, the id-or-rid
key, and a session's turns. Every reader (search hits, the service's lookups, `records
show`) goes through here, so a record reads the same from every path.

Decoded rows carry `created_at` as a UTC datetime, `tags` as a list and `metadata` as a
dict; `api_time` is the one text form of a timestamp in the HTTP API and JSON output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipeline.record import DUPLICATE_FIELDS, FIELD_NAMES, FILTERED_FIELDS, RESULT_FIELDS
from pipeline.store.scope import Scope, require_scope

if TYPE_CHECKING:
    import duckdb

_TIMESTAMPS = frozenset(f.name for f in DUPLICATE_FIELDS if f.sql == "TIMESTAMPTZ")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RID_SHAPED = re.compile(r"-?[0-9]{1,20}")

DUPLICATE_COLUMNS: tuple[str, ...] = tuple(f.name for f in DUPLICATE_FIELDS)
FILTERED_COLUMNS: tuple[str, ...] = tuple(f.name for f in FILTERED_FIELDS)


def select_list(names: Sequence[str] = RESULT_FIELDS) -> str:
    """The SELECT list of these record columns, ready for `decode`."""
    # A TIMESTAMPTZ fetched as a datetime needs pytz and comes back in the connection's
    # time zone; microseconds since the epoch are the same on every machine.
    return ", ".join(f"epoch_us({n}) AS {n}" if n in _TIMESTAMPS else n for n in names)


def decode(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """One row of a `select_list` query as a record dict."""
    record = dict(zip(names, row, strict=True))
    if "metadata" in record:
        record["metadata"] = _metadata(record["metadata"])
    if "tags" in record:
        record["tags"] = list(record["tags"] or [])
    for name in _TIMESTAMPS.intersection(record):
        record[name] = from_epoch_us(record[name])
    return record


def from_epoch_us(value: int | None) -> datetime | None:
    """A UTC datetime from `epoch_us(...)` (how every timestamp leaves the store)."""
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    # The dedup stage writes a JSON object; text that is not one (a hand-edited store, an
    # older writer) is returned as it is under `_raw` rather than failing the whole read:
    # raising would hide every record of the response, dropping it would lose the text.
    return value if isinstance(value, dict) else {"_raw": text}


def fetch(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every row of the cursor's last `select_list` query, decoded."""
    names = [d[0] for d in cur.description]
    return [decode(names, row) for row in cur.fetchall()]


def api_time(value: datetime | None) -> str | None:
    """A timestamp as the API writes it: ISO 8601 in UTC, always with microseconds."""
    # The same text as the service's own timestamps (keys, feedback, erasure), so clients
    # parse one format; isoformat() alone drops `.000000` when the microseconds are zero.
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_rid(key: str) -> int | None:
    """The rid that `key` spells, or None when it is not a whole number in BIGINT range."""
    # ASCII digits only: str.isdigit also accepts "²" and "٣", which int() rejects or reads.
    if not _RID_SHAPED.fullmatch(key):
        return None
    rid = int(key)
    return rid if -(2**63) <= rid < 2**63 else None


def record_by_key(
    cur: duckdb.DuckDBPyConnection,
    key: str,
    table: str = "records",
    names: Sequence[str] = FIELD_NAMES,
) -> dict[str, Any] | None:
    """The row of `table` whose id is `key`, else whose rid is `key`; None when neither."""
    cur.execute(
        f"SELECT {select_list(names)} FROM {table} WHERE id = ? OR rid = ? "
        "ORDER BY (id = ?) DESC LIMIT 1",
        [key, parse_rid(key), key],
    )
    rows = fetch(cur)
    return rows[0] if rows else None


def session_turns(
    cur: duckdb.DuckDBPyConnection,
    session_ids: Iterable[str | None],
    scope: Scope,
    table: str = "records",
    names: Sequence[str] = RESULT_FIELDS,
) -> dict[str, list[dict[str, Any]]]:
    """Every turn in `table` of these sessions within the scope, by session, in turn order
    (then time, then id)."""
    wanted = sorted({s for s in session_ids if s is not None})
    in_scope, scope_params = require_scope(scope).sql()
    if not wanted:
        return {}
    cur.execute(
        f"SELECT {select_list(names)} FROM {table} "
        f"WHERE session_id IN (SELECT unnest(?::VARCHAR[])) AND {in_scope} "
        "ORDER BY session_id, turn NULLS LAST, created_at NULLS LAST, id",
        [wanted, *scope_params],
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for record in fetch(cur):
        out.setdefault(record["session_id"], []).append(record)
    return out
