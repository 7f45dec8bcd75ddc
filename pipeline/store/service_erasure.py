"""SQL of the service database that only erasure runs (pipeline/service/erase_steps.py):
scrubbing the query log, re-scoping keys, and compacting the file so no erased value is left
in its free blocks. The audit rows themselves are in pipeline/store/service.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import duckdb

from pipeline.io.atomic import fsync_dir
from pipeline.store import crypt


def queries_mentioning(
    con: duckdb.DuckDBPyConnection, rids: Sequence[int], needle: str
) -> list[tuple[int, str, list[str], bool]]:
    """Logged queries that returned one of `rids` or whose text or filters contain `needle`
    (as a substring; the caller narrows): (rowid, text, filters, returned one of rids)."""
    return con.execute(
        """SELECT rowid, text, filters, len(list_intersect(result_rids, $rids::BIGINT[])) > 0
           FROM query_log
           WHERE len(list_intersect(result_rids, $rids::BIGINT[])) > 0
              OR contains(text, $n) OR contains(array_to_string(filters, chr(31)), $n)""",
        {"rids": list(rids), "n": needle},
    ).fetchall()


def blank_queries(con: duckdb.DuckDBPyConnection, rowids: Sequence[int]) -> int:
    """Empty the text and filters of these logged queries (their counts and latency stay)."""
    if not rowids:
        return 0
    con.execute(
        "UPDATE query_log SET text = '', filters = []::VARCHAR[] "
        "WHERE list_contains($r::BIGINT[], rowid)",
        {"r": list(rowids)},
    )
    return len(rowids)


def keys_scoped_to(con: duckdb.DuckDBPyConnection, user_id: str) -> list[tuple[str, list[str]]]:
    """(key id, scope user ids) of every key whose scope names this user id."""
    return con.execute(
        "SELECT key_id, scope_user_ids FROM api_keys WHERE list_contains(scope_user_ids, ?)",
        [user_id],
    ).fetchall()


def rescope_key(
    con: duckdb.DuckDBPyConnection, key_id: str, user_ids: list[str], revoke: bool
) -> None:
    """Set a key's user-id scope (never to empty: that would mean "every user"); revoke it."""
    con.execute(
        "UPDATE api_keys SET scope_user_ids = $ids, "
        "revoked_at = CASE WHEN $revoke THEN coalesce(revoked_at, now()) ELSE revoked_at END "
        "WHERE key_id = $k",
        {"ids": user_ids, "revoke": revoke, "k": key_id},
    )


def compact_into_fresh_file(con: duckdb.DuckDBPyConnection, path: str | Path) -> None:
    """Copy the open database into a new file and rename that over `path`.

    DuckDB leaves deleted or overwritten values in the file's free blocks; a copy holds
    only live rows. `con` stays open until the new file is in place, so no other process
    can open the old file and write to it meanwhile (they wait for its lock, then open
    the new one).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.erasure.{uuid.uuid4().hex[:8]}.tmp")
    source = con.execute("SELECT current_database()").fetchone()[0]
    con.execute("CHECKPOINT")  # nothing of the old file waits in a WAL
    try:
        crypt.attach(con, tmp, "fresh", read_only=False)  # encrypted as the old file was
        try:
            # Copies tables and sequences (at their current position), not free blocks.
            con.execute(f'COPY FROM DATABASE "{source}" TO fresh')
        finally:
            con.execute("DETACH fresh")
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
