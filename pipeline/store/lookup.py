"""Reads of the dedup store the search service needs: one record, its session, its duplicates,
and counts, each restricted to a `Scope` (pipeline/store/scope.py) that every function requires.
A kept record comes with what later stages learned of it (the side files' columns) and any
reviewed-label decision; a filtered one with why it was filtered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from pipeline.errors import NotFoundError
from pipeline.io.stamp import file_stamp
from pipeline.record import FIELD_NAMES
from pipeline.store import rows
from pipeline.store.annotations import COLUMNS as SIDE_COLUMNS
from pipeline.store.annotations import SIDE_FILES, VIEW
from pipeline.store.db import open_snapshot
from pipeline.store.scope import Scope, require_scope


class StoreReader:
    """A read-only view of the store that follows atomic replacements of the file.

    Each replacement is opened with `open_snapshot` (a private ATTACH: see its docstring).
    """

    def __init__(self, path: str | Path, check_seconds: float = 0.5) -> None:
        self.path = Path(path)
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._stamp: tuple[Any, ...] | None = None
        self._checked = 0.0

    def refresh(self, force: bool = False) -> bool:
        """Reopen when the file was replaced; True when a new file was opened."""
        with self._lock:
            now = time.monotonic()
            if not force and self._con is not None and now - self._checked < self.check_seconds:
                return False
            self._checked = now
            # The side files too: the view `open_snapshot` defines reads one only if it
            # existed then (a first anomaly stage after the service started).
            stamp = (file_stamp(self.path), *(file_stamp(s.under(self.path)) for s in SIDE_FILES))
            if self._con is not None and stamp == self._stamp:
                return False
            con = open_snapshot(self.path)  # NotFoundError while there is no store yet
            # The replaced connection is dropped, not closed: closing it would close the
            # cursors requests still read (tests/test_serve_swap.py); it goes with the last.
            self._con, self._stamp = con, stamp
            return True

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the current file, for one request (cursors are per thread)."""
        self.refresh()
        assert self._con is not None
        cur = self._con.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            if self._con is not None:
                self._con.close()
            self._con = None


def get_record(cur: duckdb.DuckDBPyConnection, record_id: str, scope: Scope) -> dict[str, Any]:
    """The kept record with this id (or rid); NotFoundError, or ForbiddenError out of scope."""
    record = _find_record(cur, record_id)
    if record is None:
        raise NotFoundError(f"record {record_id!r} not found")
    require_scope(scope).check(record, f"record {record_id!r}")
    return record


def read_record(cur: duckdb.DuckDBPyConnection, record_id: str, scope: Scope) -> dict[str, Any]:
    """A kept record with its side files' columns, its label decision, its session's turns
    and its removed duplicates; or a filtered record with why (`filtered`); in the scope."""
    record = _find_record(cur, record_id)
    if record is None:
        return _read_filtered(cur, record_id, scope)
    require_scope(scope).check(record, f"record {record_id!r}")
    session_id = record.get("session_id")
    return {
        "status": "kept",
        "record": {**record, **_annotations(cur, record["id"])},
        "session": session_turns(cur, session_id, scope) if session_id else [],
        "duplicates": duplicates_of(cur, record["rid"], scope),
        "label_corrections": _label_corrections(cur, record["id"]),
    }


def _read_filtered(cur: duckdb.DuckDBPyConnection, record_id: str, scope: Scope) -> dict[str, Any]:
    """A record a quality filter dropped: its fields and the filter, value, threshold, bound
    and detail (as `pipeline records show` gives them); NotFoundError when there is none."""
    found = None
    if _has_table(cur, "filtered"):  # a store written before the table existed has none
        found = rows.record_by_key(cur, record_id, "store.filtered", rows.FILTERED_COLUMNS)
    if found is None:
        raise NotFoundError(f"record {record_id!r} not found")
    require_scope(scope).check(found, f"record {record_id!r}")
    why = {name: found.pop(name) for name in rows.FILTERED_COLUMNS if name not in FIELD_NAMES}
    empty: list[dict[str, Any]] = []
    return {"status": "filtered", "record": found, "filtered": why, "session": empty,
            "duplicates": empty, "label_corrections": empty}  # fmt: skip


def _annotations(cur: duckdb.DuckDBPyConnection, record_id: str) -> dict[str, Any]:
    """The side files' columns of a kept record (anomaly_score, ...), None where absent."""
    row = cur.execute(f"SELECT {', '.join(SIDE_COLUMNS)} FROM {VIEW} WHERE id = ?", [record_id])
    found = row.fetchone()
    return dict(zip(SIDE_COLUMNS, found or [None] * len(SIDE_COLUMNS), strict=True))


def _label_corrections(cur: duckdb.DuckDBPyConnection, record_id: str) -> list[dict[str, Any]]:
    """The reviewed-label decision applied to the record: the label before and after, the
    action, who decided and when (docs/labels.md)."""
    if not _has_table(cur, "label_corrections"):
        return []
    cur.execute(
        "SELECT original_label, label, action, corrected_by, "
        "epoch_us(corrected_at) AS corrected_at FROM store.label_corrections "
        "WHERE record_id = ? ORDER BY corrected_at",
        [record_id],
    )
    names = [d[0] for d in cur.description]
    out = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    for fix in out:
        fix["corrected_at"] = rows.api_time(rows.from_epoch_us(fix["corrected_at"]))
    return out


def _has_table(cur: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = cur.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'store' AND table_name = ?",
        [name],
    ).fetchone()
    return bool(found and found[0])


def _find_record(cur: duckdb.DuckDBPyConnection, record_id: str) -> dict[str, Any] | None:
    """The kept record with this id (or this rid, when `record_id` is an integer)."""
    return rows.record_by_key(cur, record_id, "store.records")


def session_turns(
    cur: duckdb.DuckDBPyConnection, session_id: str, scope: Scope
) -> list[dict[str, Any]]:
    """The kept records of a session in turn order, within the scope."""
    turns = rows.session_turns(cur, [session_id], scope, "store.records", FIELD_NAMES)
    return turns.get(session_id, [])


def duplicates_of(cur: duckdb.DuckDBPyConnection, rid: int, scope: Scope) -> list[dict[str, Any]]:
    """The removed duplicates that point at the kept record `rid`, within the scope."""
    where, params = require_scope(scope).sql()
    names = (*FIELD_NAMES, "method", "similarity")
    cur.execute(
        f"""SELECT {rows.select_list(names)} FROM store.duplicates
            WHERE duplicate_of_rid = ? AND {where}
            ORDER BY similarity DESC, id""",
        [rid, *params],
    )
    return rows.fetch(cur)


def store_counts(cur: duckdb.DuckDBPyConnection, scope: Scope, top: int = 20) -> dict[str, Any]:
    """Record and duplicate counts, by label, origin and source, within the scope."""
    where, params = require_scope(scope).sql()
    records = cur.execute(f"SELECT count(*) FROM store.records WHERE {where}", params).fetchone()
    duplicates = cur.execute(
        f"SELECT count(*) FROM store.duplicates WHERE {where}", params
    ).fetchone()
    out: dict[str, Any] = {"records": records[0], "duplicates": duplicates[0]}
    for field in ("label", "origin", "source"):
        cur.execute(
            f"""SELECT coalesce({field}, '') AS value, count(*) AS n FROM store.records
                WHERE {where} GROUP BY value ORDER BY n DESC, value LIMIT ?""",
            [*params, top],
        )
        out[f"by_{field}"] = {value: n for value, n in cur.fetchall()}
    if not scope.restricted:
        # Rejected rows carry no user or source: only an unscoped key sees their count.
        out["rejected"] = cur.execute("SELECT count(*) FROM store.rejected").fetchone()[0]
    return out
