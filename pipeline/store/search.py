"""Search queries on the kept records: filters -> record ids, and the records of the hits.

Each query takes the caller's `Scope` (pipeline/store/scope.py), required: hits, their
records and their session turns never leave it. Every user value is a bound parameter.
Column names and operators come from the fixed tables below, keyed by the already-validated
`Condition` (pipeline/search/filters.py), so no text a user typed ever becomes SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.record import RESULT_FIELDS
from pipeline.store import rows
from pipeline.store.annotations import COLUMNS as SIDE_COLUMNS
from pipeline.store.annotations import VIEW
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
    **{name: name for name in SIDE_COLUMNS},  # from the annotated view (see matching_rids)
}
_COMPARE = {"=": "=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

# What a search hit reads of a record (everything but file and line), from the field table.
RESULT_COLUMNS: tuple[str, ...] = RESULT_FIELDS
_SELECT = rows.select_list(RESULT_COLUMNS)
# A hit also carries what later stages learned of it: the side files' columns (anomaly_score,
# ...), NULL where a file or its row is missing, from the view `open_snapshot` defines.
_SELECT_HIT = ", ".join([_SELECT, *SIDE_COLUMNS])


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
    # A side file's column (anomaly_score) is only in the view `open_snapshot` defines.
    table = VIEW if any(c.field in SIDE_COLUMNS for c in conditions) else "records"
    found = con.execute(
        f"SELECT rid FROM {table} WHERE ({where}) AND {in_scope} ORDER BY rid",
        [*params, *scope_params],
    ).fetchnumpy()
    return np.asarray(found["rid"], dtype=np.int64)


def kept_rids(con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """Sorted int64 rids of every kept record."""
    found = con.execute("SELECT rid FROM records ORDER BY rid").fetchnumpy()
    return np.asarray(found["rid"], dtype=np.int64)


def fetch_records(
    con: duckdb.DuckDBPyConnection, rids: Iterable[int], scope: Scope
) -> dict[int, dict[str, Any]]:
    """The result columns of these records in the scope, then the side files' columns, keyed
    by rid (others are missing). `con` is an `open_snapshot` cursor (it has the view)."""
    wanted = [int(r) for r in rids]
    in_scope, scope_params = require_scope(scope).sql()
    if not wanted:
        return {}
    con.execute(
        f"SELECT {_SELECT_HIT} FROM {VIEW} WHERE rid IN (SELECT unnest(?::BIGINT[])) "
        f"AND {in_scope}",
        [wanted, *scope_params],
    )
    return {record["rid"]: record for record in rows.fetch(con)}
