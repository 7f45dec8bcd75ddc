"""SQL that removes one user's rows from the dedup store, into a new file.

The store is never edited in place: a server may hold it open read-only and DuckDB would
refuse a writer, and a crash half-way must leave the old file whole. Nor is the new file a
copy with rows deleted afterwards: DuckDB leaves deleted values in the file's free blocks,
where the erased text could still be read. The new file is created empty and filled with
the rows that stay; the caller publishes it with one rename (pipeline/service/erasure.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from pipeline.store import crypt
from pipeline.store.db import connect
from pipeline.store.schema import DDL


@dataclass
class UserRows:
    """What the store holds of one user: record ids, rids and the texts (for the caches)."""

    kept_rids: list[int] = field(default_factory=list)  # kept records: in the index
    all_rids: list[int] = field(default_factory=list)  # kept, duplicate and filtered records
    ids: list[str] = field(default_factory=list)
    texts: list[tuple[str, str | None]] = field(default_factory=list)  # (prompt, response)


def token_pattern(user_id: str) -> re.Pattern[str]:
    """The user id as a whole token, raw or JSON-escaped: not inside a longer word or id
    ("alice" is not in "malice", "alice-2", "alice.smith" or "alice@x"; it is in "alice.")."""
    forms = sorted({user_id, json.dumps(user_id)[1:-1]})
    return re.compile(
        "|".join(rf"(?<![\w.@+-]){re.escape(form)}(?![\w@+-]|\.\w)" for form in forms)
    )


def _tables(con: duckdb.DuckDBPyConnection, database: str) -> set[str]:
    """The tables of an attached database (a store from before a table was added lacks it)."""
    return {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [database]
    ).fetchall()}  # fmt: skip


def _attach(store: str | Path) -> duckdb.DuckDBPyConnection:
    # ATTACH to a private database: `connect(store)` could return this process's cached
    # instance of a store file that has since been replaced (a server keeps one open).
    con = duckdb.connect()
    try:
        crypt.attach(con, store, "store", read_only=True)
    except BaseException:
        con.close()
        raise
    return con


def user_rows(store: str | Path, user_id: str) -> UserRows:
    """The user's kept, duplicate and filtered records in the store (rids sorted)."""
    con = _attach(store)
    try:
        others = [t for t in ("duplicates", "filtered") if t in _tables(con, "store")]
        rows = con.execute(
            "SELECT rid, id, prompt, response, true FROM store.records WHERE user_id = $u"
            + "".join(
                f" UNION ALL SELECT rid, id, prompt, response, false FROM store.{t} "
                "WHERE user_id = $u"
                for t in others
            ),
            {"u": user_id},
        ).fetchall()
    finally:
        con.close()
    return UserRows(
        kept_rids=sorted(r[0] for r in rows if r[4]),
        all_rids=sorted(r[0] for r in rows),
        ids=sorted(r[1] for r in rows),
        texts=[(r[2], r[3]) for r in rows],
    )


def _rejected_matches(con: duckdb.DuckDBPyConnection, user_id: str, digest: str) -> list[int]:
    """rowids of `src.rejected` rows of the user: by the stored hash of their user id, or
    by the id appearing as a whole token in the raw text (rows whose id was unreadable)."""
    columns = {d[0] for d in con.execute("SELECT * FROM src.rejected LIMIT 0").description}
    by_hash = "user_hash = $h OR " if "user_hash" in columns else ""
    escaped = json.dumps(user_id)[1:-1]
    candidates = con.execute(
        f"""SELECT rowid, raw, {"user_hash = $h" if by_hash else "false"} FROM src.rejected
            WHERE {by_hash} contains(raw, $u) OR contains(raw, $e)""",
        {"h": digest, "u": user_id, "e": escaped} if by_hash else {"u": user_id, "e": escaped},
    ).fetchall()
    pattern = token_pattern(user_id)
    return sorted(rowid for rowid, raw, hashed in candidates if hashed or pattern.search(raw))


@dataclass
class StoreErasure:
    """What a user's erasure removed from the store (row counts)."""

    records: int = 0
    duplicates: int = 0
    preferences: int = 0
    pii_redactions: int = 0
    rejected: int = 0
    filtered: int = 0

    def total(self) -> int:
        return (
            self.records
            + self.duplicates
            + self.preferences
            + self.pii_redactions
            + (self.rejected)
            + self.filtered
        )


# Per table: which rows stay. `erased` holds the ids of the user's records, `gone` the
# rowids of the user's rejected rows. A table not listed here is copied whole; the test
# suite checks every table of the schema is listed or holds no user data.
_KEEP = {
    "records": "user_id IS DISTINCT FROM $u",
    "duplicates": "user_id IS DISTINCT FROM $u",
    "filtered": "user_id IS DISTINCT FROM $u",
    "preferences": "record_id NOT IN (SELECT id FROM erased)",
    "pii_redactions": "record_id NOT IN (SELECT id FROM erased)",
    "label_corrections": "record_id NOT IN (SELECT id FROM erased)",
    "rejected": "rowid NOT IN (SELECT r FROM gone)",
    "meta": "true",
}


def _counts(con: duckdb.DuckDBPyConnection, user_id: str) -> StoreErasure:
    present = _tables(con, "src")

    def count(table: str) -> int:
        if table not in present:  # a store from before the table existed
            return 0
        sql = f"SELECT count(*) FROM src.{table} WHERE NOT ({_KEEP[table]})"
        return con.execute(sql, {"u": user_id} if "$u" in _KEEP[table] else {}).fetchone()[0]

    tables = ("records", "duplicates", "preferences", "pii_redactions", "rejected", "filtered")
    return StoreErasure(*(count(t) for t in tables))


def _prepare(con: duckdb.DuckDBPyConnection, src: str | Path, user_id: str, digest: str) -> None:
    crypt.attach(con, src, "src", read_only=True)
    others = [t for t in ("duplicates", "filtered") if t in _tables(con, "src")]
    con.execute(
        "CREATE TEMP TABLE erased AS SELECT id FROM src.records WHERE user_id = $u"
        + "".join(f" UNION ALL SELECT id FROM src.{t} WHERE user_id = $u" for t in others),
        {"u": user_id},
    )
    gone = _rejected_matches(con, user_id, digest)
    con.execute("CREATE TEMP TABLE gone (r BIGINT)")
    if gone:
        con.executemany("INSERT INTO gone VALUES (?)", [[r] for r in gone])


def count_user_rows(store: str | Path, user_id: str, digest: str) -> StoreErasure:
    """How many rows of each table an erasure of this user would remove."""
    con = duckdb.connect()
    try:
        _prepare(con, store, user_id, digest)
        return _counts(con, user_id)
    finally:
        con.close()


def copy_without_user(src: str | Path, dst: str | Path, user_id: str, digest: str) -> StoreErasure:
    """Write to the new file `dst` the store `src` without any row of `user_id`."""
    con = connect(dst, read_only=False)
    try:
        target = con.execute("SELECT current_database()").fetchone()[0]
        _prepare(con, src, user_id, digest)
        result = _counts(con, user_id)
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'src' ORDER BY 1"
        ).fetchall()]  # fmt: skip
        con.execute(f'USE "{target}"')
        for statement in DDL:  # today's schema: an older store gains the new columns
            con.execute(statement)
        for table in tables:
            keep = _KEEP.get(table, "true")
            params: dict[str, Any] = {"u": user_id} if "$u" in keep else {}
            existing = {r[0] for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [target]
            ).fetchall()}  # fmt: skip
            if table not in existing:
                con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM src."{table}" LIMIT 0')
            con.execute(
                f'INSERT INTO "{table}" BY NAME SELECT * FROM src."{table}" WHERE {keep}', params
            )
        con.execute("DETACH src")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return result
