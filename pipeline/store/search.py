"""Search queries on the kept records: filters -> record ids, results, session turns.

Each query takes the caller's `Scope` (pipeline/store/scope.py), required: hits, their
records and their session turns never leave it. Every user value is a bound parameter.
Column names and operators come from the fixed tables below, keyed by the already-validated
`Condition` (pipeline/search/filters.py), so no text a user typed ever becomes SQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.store.scope import Scope, require_scope

if TYPE_CHECKING:
    import duckdb

    from pipeline.search.filters import Condition

_COLUMNS = {
    "label": "label",
    "user_id": "user_id",
    "session_id": "session_id",
    "origin": "origin",
    "source": "source",
    "quality": "quality",
    "created_at": "created_at",
}
_COMPARE = {"=": "=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

# The record's fields (pipeline.record.USER_FIELDS with rid), spelled out because importing
# pipeline.record loads pyarrow (~56 ms) into `pipeline search` start-up; a test checks they agree.
RESULT_COLUMNS: tuple[str, ...] = (
    "rid",
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
# TIMESTAMPTZ values would need pytz to reach Python; microseconds since the epoch do not.
_SELECT = ", ".join(
    "epoch_us(created_at) AS created_at" if c == "created_at" else c for c in RESULT_COLUMNS
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def condition_sql(cond: Condition) -> tuple[str, list[Any]]:
    """One condition as a SQL predicate with `?` placeholders and its parameters."""
    if cond.field == "tags":
        # Tags is a list: `tags=x` means the record carries tag x.
        if cond.op == "in":
            return "list_has_any(coalesce(tags, []), ?::VARCHAR[])", [list(cond.value)]
        if cond.op == "!=":
            return "NOT list_contains(coalesce(tags, []), ?)", [cond.value]
        return "list_contains(coalesce(tags, []), ?)", [cond.value]
    column = _COLUMNS[cond.field]
    cast = "::TIMESTAMPTZ" if cond.field == "created_at" else ""
    if cond.op == "in":
        placeholders = ", ".join(f"?{cast}" for _ in cond.value)
        return f"{column} IN ({placeholders})", list(cond.value)
    if cond.op == "!=":
        return f"{column} IS DISTINCT FROM ?{cast}", [cond.value]
    return f"{column} {_COMPARE[cond.op]} ?{cast}", [cond.value]


def where_clause(conditions: Sequence[Condition]) -> tuple[str, list[Any]]:
    """AND all conditions together; an empty sequence matches every record."""
    if not conditions:
        return "TRUE", []
    parts, params = [], []
    for cond in conditions:
        sql, values = condition_sql(cond)
        parts.append(f"({sql})")
        params.extend(values)
    return " AND ".join(parts), params


def matching_rids(
    con: duckdb.DuckDBPyConnection, conditions: Sequence[Condition], scope: Scope
) -> np.ndarray:
    """Sorted int64 rids of the kept records in the scope matching every condition."""
    where, params = where_clause(conditions)
    in_scope, scope_params = require_scope(scope).sql()
    rows = con.execute(
        f"SELECT rid FROM records WHERE ({where}) AND {in_scope} ORDER BY rid",
        [*params, *scope_params],
    ).fetchnumpy()
    return np.asarray(rows["rid"], dtype=np.int64)


def kept_rids(con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """Sorted int64 rids of every kept record."""
    rows = con.execute("SELECT rid FROM records ORDER BY rid").fetchnumpy()
    return np.asarray(rows["rid"], dtype=np.int64)


def fetch_records(
    con: duckdb.DuckDBPyConnection, rids: Iterable[int], scope: Scope
) -> dict[int, dict[str, Any]]:
    """The result columns of these records in the scope, keyed by rid (others are missing)."""
    wanted = [int(r) for r in rids]
    in_scope, scope_params = require_scope(scope).sql()
    if not wanted:
        return {}
    cur = con.execute(
        f"SELECT {_SELECT} FROM records WHERE rid IN (SELECT unnest(?::BIGINT[])) AND {in_scope}",
        [wanted, *scope_params],
    )
    return {row[0]: _row(row) for row in cur.fetchall()}


def session_turns(
    con: duckdb.DuckDBPyConnection, session_ids: Iterable[str], scope: Scope
) -> dict[str, list[dict[str, Any]]]:
    """Every kept turn of these sessions in the scope, in turn order (then time, then id)."""
    wanted = sorted({s for s in session_ids if s is not None})
    in_scope, scope_params = require_scope(scope).sql()
    if not wanted:
        return {}
    cur = con.execute(
        f"SELECT {_SELECT} FROM records WHERE session_id IN (SELECT unnest(?::VARCHAR[])) "
        f"AND {in_scope} ORDER BY session_id, turn NULLS LAST, created_at NULLS LAST, id",
        [wanted, *scope_params],
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in cur.fetchall():
        record = _row(row)
        out.setdefault(record["session_id"], []).append(record)
    return out


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    record = dict(zip(RESULT_COLUMNS, row, strict=True))
    text = record.get("metadata")
    try:
        record["metadata"] = json.loads(text) if text else {}
    except json.JSONDecodeError:
        # Written by the dedup stage as JSON; keep unreadable text visible rather than drop it.
        record["metadata"] = {"_raw": text}
    record["tags"] = list(record.get("tags") or [])
    if record["created_at"] is not None:
        record["created_at"] = _EPOCH + timedelta(microseconds=record["created_at"])
    return record
