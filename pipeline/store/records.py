"""SQL of the dedup store's readers: stats and records for the CLI (the stage writes it
through `pipeline.store.staging`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from pipeline.errors import NotFoundError
from pipeline.store import rows
from pipeline.store.annotations import annotate
from pipeline.store.db import connect

TABLES: tuple[str, ...] = (
    "records", "duplicates", "filtered", "rejected", "preferences", "pii_redactions"
)  # fmt: skip


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _present(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The store's tables: one written before `filtered` existed has none."""
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def stats(path: Path) -> dict[str, Any]:
    """Counts of the store: per table, rejected by reason, duplicates by method, filtered by
    filter, kept by origin."""
    con = connect(path, read_only=True)
    try:
        present = _present(con)
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] if t in present
                  else 0 for t in TABLES}  # fmt: skip
        by = {
            "rejected_by_reason": "SELECT reason, count(*) FROM rejected GROUP BY 1 ORDER BY 1",
            "duplicates_by_method": "SELECT method, count(*) FROM duplicates GROUP BY 1 ORDER BY 1",
            "filtered_by_filter": "SELECT filter, count(*) FROM filtered GROUP BY 1 ORDER BY 1"
            if "filtered" in present
            else "SELECT NULL, 0 WHERE false",
            "kept_by_origin": "SELECT origin, count(*) FROM records GROUP BY 1 ORDER BY 1",
            "kept_by_label": "SELECT coalesce(label, '(none)'), count(*) FROM records "
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 50",
            "pii_by_type": "SELECT pii_type, sum(count)::BIGINT FROM pii_redactions "
            "GROUP BY 1 ORDER BY 1",
        }
        out: dict[str, Any] = {"tables": counts}
        for key, sql in by.items():
            out[key] = {str(k): int(v) for k, v in con.execute(sql).fetchall()}
        out["sessions"] = con.execute(
            "SELECT count(DISTINCT session_id) FROM records WHERE session_id IS NOT NULL"
        ).fetchone()[0]
        out["meta"] = dict(con.execute("SELECT key, value FROM meta ORDER BY key").fetchall())
        return out
    finally:
        con.close()


def _kept_as(con: duckdb.DuckDBPyConnection, record: dict[str, Any]) -> str | None:
    """The kept record a duplicate ends at: an exact duplicate's survivor may itself have
    been removed as a near duplicate, so follow `duplicate_of` (at most a few hops)."""
    target = record["duplicate_of"]
    for _ in range(16):
        row = con.execute("SELECT duplicate_of FROM duplicates WHERE id = ?", [target]).fetchone()
        if row is None:
            return target
        target = row[0]
    return None


# Turns shown on each side of a conversation turn by `pipeline records show`.
NEIGHBOURS = 2


def neighbours(session: list[dict[str, Any]], record_id: str) -> dict[str, Any]:
    """The turns just before and after `record_id` in its session (in turn order), and how
    many more lie beyond them, so a long conversation is shown compactly."""
    at = next((i for i, turn in enumerate(session) if turn["id"] == record_id), None)
    if at is None:
        return {"previous": [], "next": [], "earlier": 0, "later": 0}
    start, stop = max(0, at - NEIGHBOURS), at + 1 + NEIGHBOURS
    return {
        "previous": session[start:at],
        "next": session[at + 1 : stop],
        "earlier": start,
        "later": max(0, len(session) - stop),
    }


def show(path: Path, key: str) -> dict[str, Any]:
    """A record by id (or rid): itself or its duplicate/filtered/rejected entry, its
    duplicates, its session's turns and its neighbours among them, its PII counts and
    preferences, why it was filtered (`filtered`: filter, value, threshold, bound, detail)
    and its rejection reason if any."""
    con = connect(path, read_only=True)
    try:
        kept = rows.record_by_key(con, key, "records")
        dup = rows.record_by_key(con, key, "duplicates", rows.DUPLICATE_COLUMNS)
        cut = None
        if "filtered" in _present(con):
            cut = rows.record_by_key(con, key, "filtered", rows.FILTERED_COLUMNS)
        rejected = _rows(
            con, "SELECT * FROM rejected WHERE record_id = ? ORDER BY file, line", [key]
        )
        if not kept and not dup and not cut and not rejected:
            raise NotFoundError(f"record {key!r}: not in the store ({path})")
        if kept:  # what later stages learned of it: anomaly_score, ...
            kept = {**kept, **annotate(con, path, kept["id"])}
        record = kept or dup or cut
        status = "kept" if kept else "duplicate" if dup else "filtered" if cut else "rejected"
        out: dict[str, Any] = {"status": status, "record": record, "rejected": rejected}
        if cut is not None:  # why, beside the record's own fields
            out["filtered"] = {k: cut.pop(k) for k in rows.FILTERED_COLUMNS[-5:]}
        if record is None:
            return out
        record_id = record["id"]
        out["kept_as"] = _kept_as(con, record) if dup else None if cut else record_id
        out["duplicates"] = _rows(
            con,
            "SELECT id, rid, method, similarity, file, line FROM duplicates "
            "WHERE duplicate_of = ? ORDER BY rid",
            [record_id],
        )
        out["session"] = []
        if record["session_id"] is not None:
            tables = {"records": "kept", "duplicates": "duplicate", "filtered": "filtered"}
            parts = [f"SELECT id, turn, parent_id, '{status}' AS status, prompt, response "
                     f"FROM {table} WHERE session_id = $1"
                     for table, status in tables.items() if table in _present(con)]  # fmt: skip
            out["session"] = _rows(
                con, " UNION ALL ".join(parts) + " ORDER BY turn, id", [record["session_id"]]
            )
        out["neighbours"] = neighbours(out["session"], record_id)
        out["pii"] = _rows(
            con,
            "SELECT field, pii_type, count FROM pii_redactions WHERE record_id = ? "
            "ORDER BY field, pii_type",
            [record_id],
        )
        out["preferences"] = _rows(
            con, "SELECT chosen, rejected, source FROM preferences WHERE record_id = ?", [record_id]
        )
        out["label_corrections"] = _label_corrections(con, record_id)
        return out
    finally:
        con.close()


def _label_corrections(con: duckdb.DuckDBPyConnection, record_id: str) -> list[dict[str, Any]]:
    """The reviewed-label decision applied to a record (docs/labels.md); none in a store
    built before the table existed."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'label_corrections'"
    ).fetchall()[0][0]
    if not exists:
        return []
    return _rows(
        con,
        "SELECT original_label, label, action, corrected_by, corrected_at FROM "
        "label_corrections WHERE record_id = ?",
        [record_id],
    )
