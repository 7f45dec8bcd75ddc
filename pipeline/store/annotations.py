"""Side files: per-record columns that later stages learn, joined to the kept records by id.

A stage after dedup (anomaly scores; issue 13's predictions next) must not rewrite the
store, which is the dedup stage's DVC output. It publishes a parquet file keyed by record
`id` instead, and every reader of the store sees its columns through one view,
`annotated_records` = `records` LEFT JOIN each side file. A side file that does not exist
yet reads as NULL columns, so a store without it answers the same queries.

To add a side file: one `SideFile` in SIDE_FILES. The search filters (`--filter
anomaly_score>=0.5`), `pipeline records show` and `records anomalies` follow from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

VIEW = "annotated_records"


@dataclass(frozen=True)
class SideFile:
    """A stage's per-record output: its path under the data directory and its columns."""

    stage: str
    path: Path  # relative to the data directory (the store's directory's parent)
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type); `id` is the join key

    def under(self, store_path: str | Path) -> Path:
        """This file beside the given store: data/dedup/store.duckdb -> data/<path>."""
        return Path(store_path).parent.parent / self.path


SCORE = "anomaly_score"
ANOMALY = SideFile("anomaly", Path("anomaly/scores.parquet"), ((SCORE, "DOUBLE"),))
PREDICTED_LABEL, PREDICTED_CONFIDENCE, MODEL_VERSION = (
    "predicted_label", "predicted_confidence", "model_version"
)  # fmt: skip
PREDICTIONS = SideFile(
    "predictions",
    Path("predictions/predictions.parquet"),
    ((PREDICTED_LABEL, "VARCHAR"), (PREDICTED_CONFIDENCE, "DOUBLE"), (MODEL_VERSION, "VARCHAR")),
)
SIDE_FILES: tuple[SideFile, ...] = (ANOMALY, PREDICTIONS)
COLUMNS: dict[str, str] = {name: sql for f in SIDE_FILES for name, sql in f.columns}
NUMERIC = ("DOUBLE", "FLOAT", "BIGINT", "INTEGER")


def view_sql(store_path: str | Path, records: str = "records") -> str:
    """SELECT of the kept records with every side file's columns (NULL when it is absent)."""
    selected, joins = [], []
    for n, side in enumerate(SIDE_FILES):
        path = side.under(store_path)
        for name, sql in side.columns:
            selected.append(f"s{n}.{name}" if path.exists() else f"NULL::{sql} AS {name}")
        if path.exists():
            # Our own path, never user text; quotes doubled for SQL all the same.
            literal = str(path.resolve()).replace("'", "''")
            names = ", ".join(name for name, _ in side.columns)
            joins.append(
                f"LEFT JOIN (SELECT id, {names} FROM read_parquet('{literal}')) s{n} "
                f"ON s{n}.id = r.id"
            )
    return f"SELECT r.*, {', '.join(selected)} FROM {records} r {' '.join(joins)}"


def create_view(
    con: duckdb.DuckDBPyConnection, store_path: str | Path, schema: str, records: str
) -> None:
    """Define VIEW in `schema` over the store's `records` table (qualified as needed)."""
    con.execute(f"CREATE OR REPLACE VIEW {schema}.{VIEW} AS {view_sql(store_path, records)}")


def annotate(
    con: duckdb.DuckDBPyConnection, store_path: str | Path, record_id: str
) -> dict[str, Any]:
    """The side files' columns of one record (None where a file or its row is missing)."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM ({view_sql(store_path)}) WHERE id = ?"
    row = con.execute(sql, [record_id]).fetchone()
    return dict(zip(COLUMNS, row or [None] * len(COLUMNS), strict=True))
