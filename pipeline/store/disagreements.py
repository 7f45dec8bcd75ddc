"""SQL of `pipeline records disagreements`: kept records whose given label the model disputes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import NotFoundError
from pipeline.store.annotations import PREDICTED_CONFIDENCE, PREDICTED_LABEL, PREDICTIONS, view_sql
from pipeline.store.db import connect


def disagreements(store_path: str | Path, limit: int) -> list[dict[str, Any]]:
    """Labelled records the champion predicts otherwise, most confident first (ties by rid):
    the likeliest label mistakes, or the model's blind spots."""
    if not PREDICTIONS.under(store_path).exists():
        raise NotFoundError(
            f"{PREDICTIONS.under(store_path)}: no predictions yet; "
            "run `dvc repro predictions` (or `pipeline predictions`)"
        )
    con = connect(store_path, read_only=True)
    try:
        cursor = con.execute(
            f"SELECT id, rid, label, {PREDICTED_LABEL}, {PREDICTED_CONFIDENCE}, model_version, "
            f"prompt FROM ({view_sql(store_path)}) WHERE label IS NOT NULL AND "
            f"{PREDICTED_LABEL} IS NOT NULL AND label != {PREDICTED_LABEL} "
            f"ORDER BY {PREDICTED_CONFIDENCE} DESC, rid LIMIT ?",
            [limit],
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()
