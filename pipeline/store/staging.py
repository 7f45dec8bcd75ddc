"""The dedup stage's scratch database: batches stream in, the store and Parquet come out.

The stage appends Arrow batches of redacted records (with a dense input index `idx`),
rejections, preferences and PII counts as it reads, so its own memory holds one batch and
a few fixed-size numbers per record. Exact and near-duplicate decisions come back as an
Arrow table of (idx, of_idx, method, similarity); `write_store` then builds the published
store by SQL (DuckDB sorts and spills to disk within `memory_limit`), and
`write_records_parquet` streams the kept records out of it in rid order.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.dedup.tables import PII_SCHEMA, PREFERENCE_SCHEMA, REJECTED_SCHEMA
from pipeline.record import RECORD_SCHEMA
from pipeline.store.db import connect
from pipeline.store.schema import DDL

STAGED_SCHEMA = RECORD_SCHEMA.append(pa.field("idx", pa.int64()))
DECISION_SCHEMA = pa.schema(
    [("idx", pa.int64()), ("of_idx", pa.int64()), ("method", pa.string()),
     ("similarity", pa.float64())]
)  # fmt: skip
_SCHEMAS = {
    "staged": STAGED_SCHEMA,
    "rejected": REJECTED_SCHEMA,
    "preferences": PREFERENCE_SCHEMA,
    "pii_redactions": PII_SCHEMA,
}
# Each published table's order, so the same input gives the same rows in the same order.
_ORDER = {
    "records": "rid",
    "duplicates": "rid",
    "rejected": "file, line, reason, coalesce(record_id, '')",
    "preferences": "record_id, chosen, rejected, source NULLS FIRST",
    "pii_redactions": "record_id, field, pii_type, count",
}
PARQUET_ROW_GROUP = 65_536


def _configure(con: duckdb.DuckDBPyConnection, memory_limit: str, scratch: Path) -> None:
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")  # checked by the stage's settings
    con.execute(f"SET temp_directory = '{scratch.as_posix().replace(chr(39), chr(39) * 2)}'")


class Staging:
    """A scratch DuckDB file under `directory`, removed by the caller with the directory."""

    def __init__(self, directory: Path, memory_limit: str = "1GB") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.memory_limit = memory_limit
        self.path = self.directory / "staging.duckdb"
        self.con = connect(self.path, read_only=False)
        _configure(self.con, memory_limit, self.directory / "spill")
        for name, schema in _SCHEMAS.items():
            self.con.register("empty", schema.empty_table())
            self.con.execute(f"CREATE TABLE {name} AS SELECT * FROM empty")
            self.con.unregister("empty")

    def append(self, name: str, rows: pa.Table) -> None:
        """Bulk-append an Arrow table to a staging table (in `_SCHEMAS`)."""
        if rows.num_rows == 0:
            return
        self.con.register("incoming", rows.cast(_SCHEMAS[name]))
        self.con.execute(f"INSERT INTO {name} SELECT * FROM incoming")
        self.con.unregister("incoming")

    def first_id(self, rid: int) -> str | None:
        """The id of the earliest staged record with this rid (rid collisions only)."""
        row = self.con.execute(
            "SELECT id FROM staged WHERE rid = ? ORDER BY idx LIMIT 1", [rid]
        ).fetchone()
        return None if row is None else row[0]

    def texts(self, idx: np.ndarray, fields: tuple[str, ...]) -> list[tuple[str | None, ...]]:
        """The `fields` of the staged records `idx` (one bounded batch), in ascending idx."""
        self.con.register("wanted", pa.table({"idx": pa.array(idx, pa.int64())}))
        try:
            columns = ", ".join(f"s.{f}" for f in fields)
            return self.con.execute(
                f"SELECT {columns} FROM staged s SEMI JOIN wanted w ON s.idx = w.idx ORDER BY s.idx"
            ).fetchall()
        finally:
            self.con.unregister("wanted")

    def count(self, name: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {name}").fetchone()[0])

    def write_store(self, path: Path, decisions: pa.Table, meta: Mapping[str, str]) -> None:
        """Create the published store at `path` from the staged tables and the decisions."""
        con = self.con
        con.register("decided", decisions.cast(DECISION_SCHEMA))
        con.execute("CREATE OR REPLACE TABLE decisions AS SELECT * FROM decided")
        con.unregister("decided")
        rows = sorted(meta.items())
        con.register("meta_rows", pa.table({"key": [k for k, _ in rows],
                                            "value": [v for _, v in rows]}))  # fmt: skip
        con.execute("CREATE OR REPLACE TABLE meta_rows AS SELECT * FROM meta_rows")
        con.unregister("meta_rows")
        con.execute("ATTACH ? AS store", [str(path)])
        try:
            con.execute("USE store")
            for statement in DDL:
                con.execute(statement)
            records = ", ".join(RECORD_SCHEMA.names)
            staged = ", ".join(f"s.{name}" for name in RECORD_SCHEMA.names)
            con.execute(
                f"INSERT INTO records SELECT {records} FROM staging.staged s "
                "ANTI JOIN staging.decisions d ON s.idx = d.idx ORDER BY s.rid"
            )
            con.execute(
                f"INSERT INTO duplicates SELECT {staged}, o.id, o.rid, d.method, d.similarity "
                "FROM staging.decisions d JOIN staging.staged s ON s.idx = d.idx "
                "JOIN staging.staged o ON o.idx = d.of_idx ORDER BY s.rid"
            )
            for name in ("rejected", "preferences", "pii_redactions"):
                con.execute(
                    f"INSERT INTO {name} SELECT * FROM staging.{name} ORDER BY {_ORDER[name]}"
                )
            con.execute("INSERT INTO meta SELECT key, value FROM staging.meta_rows ORDER BY key")
            con.execute("CHECKPOINT store")
        finally:
            con.execute("USE staging")
            con.execute("DETACH store")

    def close(self) -> None:
        self.con.close()


def write_records_parquet(store_path: Path, out: Path) -> None:
    """Stream the store's kept records, in rid order, into Parquet with fixed settings."""
    con = connect(store_path, read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        names = ", ".join(RECORD_SCHEMA.names)
        reader = con.sql(f"SELECT {names} FROM records ORDER BY rid").to_arrow_reader(
            PARQUET_ROW_GROUP
        )
        with pq.ParquetWriter(
            out, RECORD_SCHEMA, compression="zstd", compression_level=3,
            write_statistics=True, use_dictionary=True,
        ) as writer:  # fmt: skip
            pending: list[pa.RecordBatch] = []
            size = 0
            for batch in reader:
                pending.append(batch)
                size += batch.num_rows
                if size >= PARQUET_ROW_GROUP:
                    _write_groups(writer, pending)
                    pending, size = [], 0
            _write_groups(writer, pending)
    finally:
        con.close()


def _write_groups(writer: pq.ParquetWriter, batches: list[pa.RecordBatch]) -> None:
    if batches:
        table = pa.Table.from_batches(batches).cast(RECORD_SCHEMA)
        writer.write_table(table, row_group_size=PARQUET_ROW_GROUP)
