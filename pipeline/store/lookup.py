"""Reads of the dedup store the search service needs: one record, its session, its duplicates,
and counts, each restricted to an API key's scope.

Scopes are data: field names come from a fixed list and values are bound as parameters.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from pipeline.errors import NotFoundError
from pipeline.record import FIELD_NAMES
from pipeline.store import rows

# The record fields a key can be restricted on (`pipeline keys create --scope FIELD=v1,v2`).
SCOPE_FIELDS: tuple[str, ...] = ("user_id", "source")

Scope = Mapping[str, Sequence[str]]


class StoreReader:
    """A read-only view of the store that follows atomic replacements of the file.

    DuckDB shares one database instance per path within a process, so a plain reconnect
    would keep reading the replaced file while any other connection to it is open.
    Attaching the file to a private in-memory database opens the current file every time.
    """

    def __init__(self, path: str | Path, check_seconds: float = 0.5) -> None:
        self.path = Path(path)
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._retired: duckdb.DuckDBPyConnection | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0

    def _file_stamp(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError as exc:
            raise NotFoundError(f"{self.path}: no store yet; run `dvc repro` first") from exc
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def refresh(self, force: bool = False) -> bool:
        """Reopen when the file was replaced; True when a new file was opened."""
        with self._lock:
            now = time.monotonic()
            if not force and self._con is not None and now - self._checked < self.check_seconds:
                return False
            self._checked = now
            stamp = self._file_stamp()
            if self._con is not None and stamp == self._stamp:
                return False
            con = duckdb.connect()
            con.execute("ATTACH ? AS store (READ_ONLY)", [str(self.path)])
            # The connection replaced last time is closed now, one generation later, so a
            # request that started on it has long finished.
            if self._retired is not None:
                self._retired.close()
            self._retired, self._con, self._stamp = self._con, con, stamp
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
            for con in (self._con, self._retired):
                if con is not None:
                    con.close()
            self._con = self._retired = None


def _scope_sql(scope: Scope) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for field in sorted(scope):
        if field not in SCOPE_FIELDS:
            raise ValueError(f"unknown scope field {field!r}")
        clauses.append(f"list_contains(?::VARCHAR[], {field})")
        params.append(list(scope[field]))
    return (" AND ".join(clauses) or "TRUE"), params


def get_record(cur: duckdb.DuckDBPyConnection, record_id: str) -> dict[str, Any] | None:
    """The kept record with this id (or this rid, when `record_id` is an integer)."""
    return rows.record_by_key(cur, record_id, "store.records")


def session_turns(
    cur: duckdb.DuckDBPyConnection, session_id: str, scope: Scope
) -> list[dict[str, Any]]:
    """The kept records of a session in turn order, within the scope."""
    turns = rows.session_turns(cur, [session_id], "store.records", FIELD_NAMES, _scope_sql(scope))
    return turns.get(session_id, [])


def duplicates_of(cur: duckdb.DuckDBPyConnection, rid: int, scope: Scope) -> list[dict[str, Any]]:
    """The removed duplicates that point at the kept record `rid`, within the scope."""
    where, params = _scope_sql(scope)
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
    where, params = _scope_sql(scope)
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
    if not scope:
        # Rejected rows carry no user or source: only an unscoped key sees their count.
        out["rejected"] = cur.execute("SELECT count(*) FROM store.rejected").fetchone()[0]
    return out
