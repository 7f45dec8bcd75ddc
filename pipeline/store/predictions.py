"""All SQL of the prediction log and its feedback, in data/service.duckdb (tables: migration 2
in pipeline/store/service_schema.py; opened with pipeline/store/service.open_service_db)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

PREDICTION_LOG_SCHEMA = pa.schema(
    [
        ("prediction_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("key_id", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("label", pa.string()),
        ("confidence", pa.float64()),
        ("latency_ms", pa.float64()),
        ("input_hash", pa.string()),
        ("truncated", pa.bool_()),
        ("embedding", pa.list_(pa.float32())),
        ("text", pa.string()),
    ]
)


def append_predictions(con: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    """Bulk-append logged predictions (an Arrow table of PREDICTION_LOG_SCHEMA)."""
    con.register("_predictions", table)
    try:
        con.execute("INSERT INTO predictions SELECT * FROM _predictions")
    finally:
        con.unregister("_predictions")


def prediction_label(con: duckdb.DuckDBPyConnection, prediction_id: str) -> str | None:
    """The label a logged prediction gave, or None when no such prediction is logged."""
    row = con.execute(
        "SELECT label FROM predictions WHERE prediction_id = ? LIMIT 1", [prediction_id]
    ).fetchall()
    return row[0][0] if row else None


def insert_prediction_feedback(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    """Store the true label of one prediction, as a writer key gave it."""
    con.execute(
        """INSERT INTO prediction_feedback VALUES ($prediction_id, $label, $key_id, $key_name,
                                                   now())""",
        row,
    )


def window_rows(
    con: duckdb.DuckDBPyConnection, since: str, until: str, with_embeddings: bool = True
) -> pa.Table:
    """Predictions logged in [since, until) (ISO times), oldest first, with the latest true
    label given for each (`true_label`, NULL without feedback)."""
    embedding = "p.embedding" if with_embeddings else "NULL::FLOAT[] AS embedding"
    return con.sql(
        f"""SELECT epoch_us(p.ts) AS ts_us, p.model_name, p.model_version, p.label,
                   p.confidence, p.latency_ms, {embedding}, f.label AS true_label
            FROM predictions p
            LEFT JOIN (SELECT prediction_id, arg_max(label, created_at) AS label
                       FROM prediction_feedback GROUP BY prediction_id) f USING (prediction_id)
            WHERE p.ts >= $since::TIMESTAMPTZ AND p.ts < $until::TIMESTAMPTZ
            ORDER BY p.ts, p.prediction_id""",
        params={"since": since, "until": until},
    ).to_arrow_table()


def latest_prediction_time(con: duckdb.DuckDBPyConnection) -> int | None:
    """Microseconds since the epoch of the newest logged prediction, or None."""
    return con.execute("SELECT epoch_us(max(ts)) FROM predictions").fetchall()[0][0]


def count_predictions(con: duckdb.DuckDBPyConnection, ids: Sequence[str] = ()) -> int:
    """How many predictions are logged (of `ids`, when given)."""
    if ids:
        return con.execute(
            "SELECT count(*) FROM predictions WHERE list_contains(?::VARCHAR[], prediction_id)",
            [list(ids)],
        ).fetchall()[0][0]
    return con.execute("SELECT count(*) FROM predictions").fetchall()[0][0]
