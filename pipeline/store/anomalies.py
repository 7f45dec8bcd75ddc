"""SQL of `pipeline records anomalies`: the kept records ranked by their anomaly score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import NotFoundError
from pipeline.store.annotations import ANOMALY, SCORE, view_sql
from pipeline.store.db import connect


def strangest(store_path: str | Path, limit: int) -> list[dict[str, Any]]:
    """The kept records with the highest anomaly scores, strangest first (ties by rid)."""
    if not ANOMALY.under(store_path).exists():
        raise NotFoundError(
            f"{ANOMALY.under(store_path)}: no anomaly scores yet; "
            "run `dvc repro anomaly` (or `pipeline anomaly`)"
        )
    con = connect(store_path, read_only=True)
    try:
        cursor = con.execute(
            f"SELECT id, rid, label, source, {SCORE}, prompt, response "
            f"FROM ({view_sql(store_path)}) WHERE {SCORE} IS NOT NULL "
            f"ORDER BY {SCORE} DESC, rid LIMIT ?",
            [limit],
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()
