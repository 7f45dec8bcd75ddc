"""Reads of the dedup store the search service needs: one record, its session, its duplicates,
and counts, each restricted to a `Scope` (pipeline/store/scope.py) that every function requires.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from pipeline.errors import NotFoundError
from pipeline.io.stamp import Stamp, file_stamp
from pipeline.store.db import open_snapshot
from pipeline.store.scope import Scope, require_scope

_RID_SHAPED = re.compile(r"-?[0-9]{1,20}")

# created_at is read as ISO text: fetching TIMESTAMPTZ as a Python datetime needs pytz.
_RECORD_COLUMNS = (
    "rid, id, prompt, response, label, user_id, session_id, parent_id, turn, "
    "strftime(timezone('UTC', created_at), '%Y-%m-%dT%H:%M:%S.%f+00:00') AS created_at, "
    "quality, tags, origin, source, metadata, file, line"
)


class StoreReader:
    """A read-only view of the store that follows atomic replacements of the file.

    Each replacement is opened with `open_snapshot` (a private ATTACH: see its docstring).
    """

    def __init__(self, path: str | Path, check_seconds: float = 0.5) -> None:
        self.path = Path(path)
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._stamp: Stamp | None = None
        self._checked = 0.0

    def refresh(self, force: bool = False) -> bool:
        """Reopen when the file was replaced; True when a new file was opened."""
        with self._lock:
            now = time.monotonic()
            if not force and self._con is not None and now - self._checked < self.check_seconds:
                return False
            self._checked = now
            stamp = file_stamp(self.path)
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


def _rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        item = dict(zip(names, row, strict=True))
        if isinstance(item.get("metadata"), str):
            item["metadata"] = json.loads(item["metadata"])
        out.append(item)
    return out


def get_record(cur: duckdb.DuckDBPyConnection, record_id: str, scope: Scope) -> dict[str, Any]:
    """The kept record with this id (or rid); NotFoundError, or ForbiddenError out of scope."""
    record = _find_record(cur, record_id)
    if record is None:
        raise NotFoundError(f"record {record_id!r} not found")
    require_scope(scope).check(record, f"record {record_id!r}")
    return record


def read_record(cur: duckdb.DuckDBPyConnection, record_id: str, scope: Scope) -> dict[str, Any]:
    """A record with its session's turns and its removed duplicates, all within the scope."""
    record = get_record(cur, record_id, scope)
    session_id = record.get("session_id")
    return {
        "record": record,
        "session": session_turns(cur, session_id, scope) if session_id else [],
        "duplicates": duplicates_of(cur, record["rid"], scope),
    }


def _find_record(cur: duckdb.DuckDBPyConnection, record_id: str) -> dict[str, Any] | None:
    """The kept record with this id (or this rid, when `record_id` is an integer)."""
    # ASCII digits only: str.isdigit also accepts "²" and "٣", which int() rejects or reads.
    rid = int(record_id) if _RID_SHAPED.fullmatch(record_id) else None
    if rid is not None and not -(2**63) <= rid < 2**63:
        rid = None  # not a BIGINT, so not a rid: look it up as an id only
    cur.execute(
        f"""SELECT {_RECORD_COLUMNS} FROM store.records
            WHERE id = ? OR rid = ? ORDER BY (id = ?) DESC LIMIT 1""",
        [record_id, rid, record_id],
    )
    rows = _rows(cur)
    return rows[0] if rows else None


def session_turns(
    cur: duckdb.DuckDBPyConnection, session_id: str, scope: Scope
) -> list[dict[str, Any]]:
    """The kept records of a session in turn order, within the scope."""
    where, params = require_scope(scope).sql()
    cur.execute(
        f"""SELECT {_RECORD_COLUMNS} FROM store.records
            WHERE session_id = ? AND {where}
            ORDER BY turn NULLS LAST, records.created_at NULLS LAST, id""",
        [session_id, *params],
    )
    return _rows(cur)


def duplicates_of(cur: duckdb.DuckDBPyConnection, rid: int, scope: Scope) -> list[dict[str, Any]]:
    """The removed duplicates that point at the kept record `rid`, within the scope."""
    where, params = require_scope(scope).sql()
    cur.execute(
        f"""SELECT {_RECORD_COLUMNS}, method, similarity FROM store.duplicates
            WHERE duplicate_of_rid = ? AND {where}
            ORDER BY similarity DESC, id""",
        [rid, *params],
    )
    return _rows(cur)


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
