"""SQL that removes one user's rows from the dedup store, into a new copy of the file.

The store is never edited in place: a server may hold it open read-only and DuckDB would
refuse a writer, and a crash half-way must leave the old file whole. The caller publishes
the copy with one rename (pipeline/service/erasure.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipeline.store.db import connect


@dataclass
class StoreErasure:
    """What a user's erasure removed from the store: counts, and the ids of the rows."""

    records: int = 0
    duplicates: int = 0
    preferences: int = 0
    pii_redactions: int = 0
    rejected: int = 0
    kept_rids: list[int] = field(default_factory=list)  # rids of kept records (in the index)
    all_rids: list[int] = field(default_factory=list)  # kept and duplicate rids


def user_rids(store: str | Path, user_id: str) -> tuple[list[int], list[int]]:
    """(kept rids, duplicate rids) of the user's rows in the store, sorted."""
    # ATTACH to a private database: `connect(store)` could return this process's cached
    # instance of a store file that has since been replaced (a server keeps one open).
    con = duckdb.connect()
    try:
        con.execute("ATTACH ? AS store (READ_ONLY)", [str(store)])
        kept = con.execute(
            "SELECT rid FROM store.records WHERE user_id = ? ORDER BY rid", [user_id]
        ).fetchall()
        dups = con.execute(
            "SELECT rid FROM store.duplicates WHERE user_id = ? ORDER BY rid", [user_id]
        ).fetchall()
    finally:
        con.close()
    return [r for (r,) in kept], [r for (r,) in dups]


def copy_without_user(src: str | Path, dst: str | Path, user_id: str) -> StoreErasure:
    """Write to `dst` a copy of the store `src` without any row of `user_id`."""
    con = connect(dst, read_only=False)
    try:
        target = con.execute("SELECT current_database()").fetchone()[0]
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(src)])
        con.execute(f'COPY FROM DATABASE src TO "{target}"')
        con.execute("DETACH src")
        con.execute("BEGIN TRANSACTION")
        # The user's record ids, kept and duplicate, key preferences and PII counts.
        con.execute(
            """CREATE TEMP TABLE erased AS
               SELECT id, rid, true AS kept FROM records WHERE user_id = $u
               UNION ALL
               SELECT id, rid, false AS kept FROM duplicates WHERE user_id = $u""",
            {"u": user_id},
        )
        result = StoreErasure()
        result.kept_rids = [
            r for (r,) in con.execute("SELECT rid FROM erased WHERE kept ORDER BY rid").fetchall()
        ]
        result.all_rids = [
            r for (r,) in con.execute("SELECT rid FROM erased ORDER BY rid").fetchall()
        ]
        result.preferences = _delete(
            con, "DELETE FROM preferences WHERE record_id IN (SELECT id FROM erased)"
        )
        result.pii_redactions = _delete(
            con, "DELETE FROM pii_redactions WHERE record_id IN (SELECT id FROM erased)"
        )
        # A rejected row keeps its raw line; when that line is JSON naming the user, it goes.
        result.rejected = _delete(
            con,
            """DELETE FROM rejected
               WHERE try(json_extract_string(raw, '$.user_id')) = $u""",
            {"u": user_id},
        )
        result.duplicates = _delete(
            con, "DELETE FROM duplicates WHERE user_id = $u", {"u": user_id}
        )
        result.records = _delete(con, "DELETE FROM records WHERE user_id = $u", {"u": user_id})
        con.execute("DROP TABLE erased")
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return result


def _delete(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> int:
    return len(con.execute(f"{sql} RETURNING 1", params or {}).fetchall())
