"""Search queries on the kept records: filters -> record ids, and the records of the hits.

Each query takes the caller's `Scope` (pipeline/store/scope.py), required: hits, their
records and their session turns never leave it. Every user value is a bound parameter.
Column names and operators come from the fixed tables below, keyed by the already-validated
`Condition` (pipeline/search/filters.py), so no text a user typed ever becomes SQL; a
metadata key's JSON path is built from validated name segments and bound as a parameter too.
Every leaf is two-valued (a missing field or key is "no match", never NULL), so `NOT` of
a condition holds for the records without that field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import UserInputError
from pipeline.record import RESULT_FIELDS
from pipeline.store import rows
from pipeline.store.annotations import COLUMNS as SIDE_COLUMNS
from pipeline.store.annotations import VIEW
from pipeline.store.scope import Scope, require_scope

if TYPE_CHECKING:
    import duckdb

    from pipeline.search.filters import Condition, Filter

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


_NUMBER_TYPES = "('DOUBLE', 'BIGINT', 'UBIGINT')"


def condition_sql(cond: Condition) -> tuple[str, list[Any]]:
    """One condition as a SQL predicate with `?` placeholders and its parameters."""
    from pipeline.search.filters import is_metadata

    if is_metadata(cond.field):
        return metadata_sql(cond)
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


def metadata_sql(cond: Condition) -> tuple[str, list[Any]]:
    """A metadata key compared by the type each record stores: number, string or boolean."""
    from pipeline.search.filters import metadata_path

    if cond.op == "in":
        parts = [metadata_sql(type(cond)(cond.field, "=", v)) for v in cond.value]
        return " OR ".join(f"({sql})" for sql, _ in parts), [p for _, ps in parts for p in ps]
    if cond.op == "!=":
        sql, params = metadata_sql(type(cond)(cond.field, "=", cond.value))
        return f"NOT ({sql})", params
    path, text, op = metadata_path(cond.field), cond.value, _COMPARE[cond.op]
    branches = ["WHEN 'VARCHAR' THEN json_extract_string(metadata, ?) " + op + " ?"]
    params: list[Any] = [path, path, text]
    number = _number(text)
    if number is not None:  # a value that reads as a number also matches stored numbers
        branches.append(
            f"WHEN 'DOUBLE' THEN json_extract(metadata, ?)::DOUBLE {op} ? "
            f"WHEN 'BIGINT' THEN json_extract(metadata, ?)::DOUBLE {op} ? "
            f"WHEN 'UBIGINT' THEN json_extract(metadata, ?)::DOUBLE {op} ?"
        )
        params += [path, number] * 3
    if text in ("true", "false") and cond.op == "=":
        branches.append("WHEN 'BOOLEAN' THEN json_extract(metadata, ?)::BOOLEAN = ?")
        params += [path, text == "true"]
    case = f"CASE json_type(metadata, ?) {' '.join(branches)} ELSE FALSE END"
    return f"coalesce({case}, FALSE)", params


def _number(text: str) -> float | None:
    import math

    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def filter_sql(tree: Filter) -> tuple[str, list[Any]]:
    """A filter tree (AND / OR / NOT of conditions) as a two-valued SQL predicate."""
    from pipeline.search.filters import AllOf, AnyOf, Not

    if isinstance(tree, Not):
        sql, params = filter_sql(tree.part)
        return f"NOT ({sql})", params
    if isinstance(tree, AllOf | AnyOf):
        joined = [filter_sql(part) for part in tree.parts]
        glue = " AND " if isinstance(tree, AllOf) else " OR "
        return glue.join(f"({sql})" for sql, _ in joined), [p for _, ps in joined for p in ps]
    sql, params = condition_sql(tree)
    # NULL (a record without the field) must read as "no match", so NOT reads it as a match.
    return f"coalesce(({sql}), FALSE)", params


def where_clause(conditions: Sequence[Filter]) -> tuple[str, list[Any]]:
    """AND all filters together; an empty sequence matches every record."""
    if not conditions:
        return "TRUE", []
    parts, params = [], []
    for cond in conditions:
        sql, values = filter_sql(cond)
        parts.append(f"({sql})")
        params.extend(values)
    return " AND ".join(parts), params


def check_fields(
    con: duckdb.DuckDBPyConnection, conditions: Sequence[Filter], scope: Scope
) -> None:
    """Refuse a metadata key that no record in the scope has (a typo, not an empty answer).

    Side-file columns are left alone: before their stage runs they read as NULL and match
    nothing, by design (tests/test_anomaly.py).
    """
    from pipeline.search.filters import is_metadata, metadata_path

    in_scope, scope_params = require_scope(scope).sql()
    fields = {c.field for tree in conditions for c in tree.conditions()}
    for field in sorted(f for f in fields if is_metadata(f)):
        found = con.execute(
            f"SELECT 1 FROM records WHERE json_exists(metadata, ?) AND {in_scope} LIMIT 1",
            [metadata_path(field), *scope_params],
        ).fetchone()
        if found is None:
            key = field.split(".", 1)[1]
            raise UserInputError(f"filter on {field}: no record has metadata key {key!r}")


def matching_rids(
    con: duckdb.DuckDBPyConnection, conditions: Sequence[Filter], scope: Scope
) -> np.ndarray:
    """Sorted int64 rids of the kept records in the scope matching every filter."""
    check_fields(con, conditions, scope)
    where, params = where_clause(conditions)
    in_scope, scope_params = require_scope(scope).sql()
    # A side file's column (anomaly_score) is only in the view `open_snapshot` defines.
    fields = {c.field for tree in conditions for c in tree.conditions()}
    table = VIEW if fields & set(SIDE_COLUMNS) else "records"
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
