"""All SQL of the service database (data/service.duckdb): API keys, feedback, query log, erasures
(the tables themselves, their version and migrations: pipeline/store/service_schema.py).

The server and the CLI (`pipeline keys`, `pipeline feedback`, `pipeline erase`) are separate
processes and DuckDB lets one process write a file at a time, so every operation opens the
file, does its work and closes it, retrying while another process holds the lock. The hot
path of the server never opens the file: keys are read by a background thread
(pipeline/service/keys.py) and the query log is written in batches (querylog.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.errors import BusyError
from pipeline.store.db import connect
from pipeline.store.service_schema import migrate


# Timestamps are set by DuckDB (`now()`) and read back as ISO text: binding or fetching an
# aware Python datetime would need pytz, and JSON wants text anyway.
def _iso(column: str) -> str:
    return f"strftime(timezone('UTC', {column}), '%Y-%m-%dT%H:%M:%S.%f+00:00') AS {column}"


QUERY_LOG_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("us", tz="UTC")),
        ("key_id", pa.string()),
        ("key_name", pa.string()),
        ("text", pa.string()),
        ("filters", pa.list_(pa.string())),
        ("mode", pa.string()),
        ("k", pa.int32()),
        ("result_rids", pa.list_(pa.int64())),
        ("latency_ms", pa.float64()),
        ("status", pa.int32()),
        ("query_id", pa.string()),  # schema v2: what a search response carries
    ]
)


@contextmanager
def open_service_db(
    path: str | Path, read_only: bool = False, lock_timeout: float = 10.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the service DB (creating or migrating its tables: pipeline/store/service_schema.py),
    retrying while another process writes it.

    `read_only` documents intent only: the file is always opened read-write, because DuckDB
    refuses, within one process, a read-only and a read-write connection to the same file
    (the server's threads read keys while they append the query log).
    """
    del read_only
    path = Path(path)
    deadline = time.monotonic() + lock_timeout
    delay = 0.01
    # One user of the file at a time within a process: the operations are short, and DuckDB
    # misbehaved when one thread closed its connection while another registered an Arrow scan.
    with _PROCESS_LOCK:
        while True:
            try:
                con = connect(path, read_only=False)
                break
            except BusyError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        try:
            key = (str(path.resolve()), path.stat().st_ino)
            if key not in _INITIALISED:  # once per file per process: opens stay cheap
                migrate(con, path)  # creates the tables, or brings an older file forward
                _INITIALISED.add(key)
            yield con
        finally:
            con.close()


_PROCESS_LOCK = threading.RLock()
_INITIALISED: set[tuple[str, int]] = set()


# --- API keys ---------------------------------------------------------------------------


def insert_key(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> str:
    """Store a new key (its hash, never the key); returns its creation time."""
    return con.execute(
        f"""INSERT INTO api_keys (key_id, name, role, key_hash, scope_user_ids, scope_sources,
                                  created_at, created_by)
            VALUES ($key_id, $name, $role, $key_hash, $scope_user_ids, $scope_sources,
                    now(), $created_by)
            RETURNING {_iso("created_at")}""",
        row,
    ).fetchone()[0]


def revoke_key(con: duckdb.DuckDBPyConnection, key_id: str) -> bool:
    """Mark a key revoked; False when no active key has that id."""
    found = con.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = ? AND revoked_at IS NULL "
        "RETURNING key_id",
        [key_id],
    ).fetchall()
    return bool(found)


def list_keys(con: duckdb.DuckDBPyConnection, include_revoked: bool = True) -> list[dict[str, Any]]:
    """All keys with their role and scope, without the hashes, oldest first."""
    where = "" if include_revoked else "WHERE revoked_at IS NULL"
    return _dicts(
        con.execute(
            f"""SELECT key_id, name, role, scope_user_ids, scope_sources, {_iso("created_at")},
                       created_by, {_iso("revoked_at")}
                FROM api_keys {where} ORDER BY api_keys.created_at, key_id"""
        )
    )


def active_key_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Active keys with their hashes: what the server's key cache authenticates against."""
    return _dicts(
        con.execute(
            """SELECT key_id, name, role, key_hash, scope_user_ids, scope_sources
               FROM api_keys WHERE revoked_at IS NULL"""
        )
    )


# --- feedback ---------------------------------------------------------------------------


def insert_feedback(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> tuple[int, str]:
    """Store one feedback event; returns its id and time."""
    return con.execute(
        f"""INSERT INTO feedback (record_id, rid, key_id, key_name, kind, score, raw_score,
                                  comment, created_at)
            VALUES ($record_id, $rid, $key_id, $key_name, $kind, $score, $raw_score, $comment,
                    now())
            RETURNING feedback_id, {_iso("created_at")}""",
        row,
    ).fetchone()


def feedback_aggregates(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, float, int]]:
    """(record_id, rid, mean normalised score, count) per record, sorted by record id."""
    return con.execute(
        """SELECT record_id, any_value(rid), avg(score), count(*)
           FROM feedback GROUP BY record_id ORDER BY record_id"""
    ).fetchall()


def delete_feedback(con: duckdb.DuckDBPyConnection, rids: Sequence[int]) -> int:
    """Delete feedback and relevance judgments on the given records; how many rows went."""
    rows = con.execute(
        "DELETE FROM feedback WHERE list_contains(?::BIGINT[], rid) RETURNING feedback_id",
        [list(rids)],
    ).fetchall()
    graded = con.execute(
        "DELETE FROM judgments WHERE list_contains(?::BIGINT[], rid) RETURNING judgment_id",
        [list(rids)],
    ).fetchall()
    return len(rows) + len(graded)


def logged_query(con: duckdb.DuckDBPyConnection, query_id: str) -> dict[str, Any] | None:
    """The query-log row of `query_id` (text, filters, mode, k, result_rids), or None."""
    rows = _dicts(
        con.execute(
            """SELECT query_id, key_id, text, filters, mode, k, result_rids, status
               FROM query_log WHERE query_id = ? LIMIT 1""",
            [query_id],
        )
    )
    return rows[0] if rows else None


def insert_judgment(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> tuple[int, str]:
    """Store one relevance grade of a record a logged query returned; its id and time."""
    return con.execute(
        f"""INSERT INTO judgments (query_id, record_id, rid, grade, key_id, key_name, created_at)
            VALUES ($query_id, $record_id, $rid, $grade, $key_id, $key_name, now())
            RETURNING judgment_id, {_iso("created_at")}""",
        row,
    ).fetchone()


def judged_queries(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per (query, record): the mean of each key's latest grade, with the query's text,
    filters and mode; sorted by query id and rid (a stable snapshot)."""
    return _dicts(
        con.execute(
            """WITH latest AS (
                   SELECT query_id, rid, any_value(record_id) AS record_id,
                          arg_max(grade, judgment_id) AS grade
                   FROM judgments GROUP BY query_id, rid, key_id)
               SELECT l.query_id, q.text, q.filters, q.mode, l.record_id AS id, l.rid,
                      avg(l.grade) AS grade, count(*) AS judges
               FROM latest l JOIN query_log q ON q.query_id = l.query_id
               GROUP BY l.query_id, q.text, q.filters, q.mode, l.record_id, l.rid
               ORDER BY l.query_id, l.rid"""
        )
    )


# --- query log --------------------------------------------------------------------------


def append_queries(con: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    """Bulk-append logged queries (an Arrow table of QUERY_LOG_SCHEMA)."""
    con.register("_queries", table)
    try:
        con.execute("INSERT INTO query_log SELECT * FROM _queries")
    finally:
        con.unregister("_queries")


def scrub_query_results(con: duckdb.DuckDBPyConnection, rids: Sequence[int]) -> None:
    """Remove erased record ids from logged result lists (the log keeps no erased ids)."""
    con.execute(
        """UPDATE query_log
           SET result_rids = list_filter(
               result_rids, lambda r: NOT list_contains($rids::BIGINT[], r))
           WHERE len(list_intersect(result_rids, $rids::BIGINT[])) > 0""",
        {"rids": list(rids)},
    )


def usage_summary(con: duckdb.DuckDBPyConnection, top: int) -> dict[str, Any]:
    """Queries per day, latency percentiles, zero-result queries, most-returned records."""
    totals = con.execute(
        """SELECT count(*),
                  quantile_cont(latency_ms, 0.5), quantile_cont(latency_ms, 0.95),
                  quantile_cont(latency_ms, 0.99),
                  count(*) FILTER (WHERE len(result_rids) = 0 AND status = 200),
                  count(*) FILTER (WHERE status <> 200)
           FROM query_log"""
    ).fetchone()
    per_day = con.execute(
        """SELECT strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d') AS day, count(*)
           FROM query_log GROUP BY day ORDER BY day"""
    ).fetchall()
    zero = con.execute(
        """SELECT text, count(*) AS n FROM query_log
           WHERE len(result_rids) = 0 AND status = 200
           GROUP BY text ORDER BY n DESC, text LIMIT ?""",
        [top],
    ).fetchall()
    returned = con.execute(
        """SELECT rid, count(*) AS n FROM (SELECT unnest(result_rids) AS rid FROM query_log)
           GROUP BY rid ORDER BY n DESC, rid LIMIT ?""",
        [top],
    ).fetchall()
    return {
        "queries": totals[0],
        "latency_ms": {"p50": totals[1], "p95": totals[2], "p99": totals[3]},
        "zero_result_queries": totals[4],
        "failed_queries": totals[5],
        "per_day": [{"day": d, "queries": n} for d, n in per_day],
        "top_zero_result": [{"text": t, "count": n} for t, n in zero],
        "most_returned": [{"rid": r, "count": n} for r, n in returned],
    }


# --- erasures ---------------------------------------------------------------------------


def insert_erasure(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> str:
    """Record that an erasure happened: who, when, how many rows; never what."""
    return con.execute(
        f"""INSERT INTO erasures VALUES (now(), $erased_by, $user_hash, $records,
               $duplicates, $preferences, $pii_redactions, $rejected, $feedback, $index_removed)
            RETURNING {_iso("erased_at")}""",
        row,
    ).fetchone()[0]


def list_erasures(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every recorded erasure, oldest first."""
    return _dicts(
        con.execute(
            f"SELECT {_iso('erased_at')}, * EXCLUDE (erased_at) FROM erasures "
            "ORDER BY erasures.erased_at"
        )
    )


def erasure_recorded(con: duckdb.DuckDBPyConnection, user_hash: str, since: str) -> str | None:
    """When an audit row for this user was written at or after `since` (ISO), if one was:
    a resumed erasure must not record itself twice."""
    row = con.execute(
        f"""SELECT {_iso("erased_at")} FROM erasures
            WHERE user_hash = $h AND erasures.erased_at >= $since::TIMESTAMPTZ
            ORDER BY erasures.erased_at LIMIT 1""",
        {"h": user_hash, "since": since},
    ).fetchone()
    return None if row is None else row[0]


def _dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
