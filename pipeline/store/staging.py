"""The dedup stage's scratch database: batches stream in, the store and Parquet come out.

The stage appends Arrow batches of redacted records (with a dense input index `idx`),
rejections, preferences and PII counts as it reads, so its own memory holds one batch and
a few fixed-size numbers per record. The scratch database is an in-memory DuckDB that
evicts to a temporary directory beyond `memory_limit` (no compression work, unlike a file).
Every step's decisions come back as an Arrow table of (idx, of_idx, method, similarity,
and for a quality filter's drops threshold, bound, detail); `write_store` builds the
published store by SQL, and `write_records_parquet` streams the kept records out of it.

Every table keeps input order: DuckDB preserves insertion order through scans and joins
whose streaming side is the staged table, so no statement sorts the wide rows (a sort of
long texts needs memory DuckDB cannot always spill), and the same input gives the same
rows in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.dedup.corrections import CORRECTION_SCHEMA
from pipeline.dedup.tables import PII_SCHEMA, PREFERENCE_SCHEMA, REJECTED_SCHEMA
from pipeline.record import RECORD_SCHEMA
from pipeline.store import crypt
from pipeline.store.schema import DDL

STAGED_SCHEMA = RECORD_SCHEMA.append(pa.field("idx", pa.int64()))
DECISION_SCHEMA = pa.schema(
    [("idx", pa.int64()), ("of_idx", pa.int64()), ("method", pa.string()),
     ("similarity", pa.float64()), ("threshold", pa.float64()), ("bound", pa.string()),
     ("detail", pa.string())]
)  # fmt: skip
_SCHEMAS = {
    "staged": STAGED_SCHEMA,
    "rejected": REJECTED_SCHEMA,
    "preferences": PREFERENCE_SCHEMA,
    "pii_redactions": PII_SCHEMA,
    "label_corrections": CORRECTION_SCHEMA,
}


def _configure(con: duckdb.DuckDBPyConnection, memory_limit: str, scratch: Path) -> None:
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"SET memory_limit = '{memory_limit}'")  # checked by the stage's settings
    con.execute(f"SET temp_directory = '{scratch.as_posix().replace(chr(39), chr(39) * 2)}'")


class Staging:
    """A scratch in-memory DuckDB spilling under `directory` (the caller removes it)."""

    def __init__(self, directory: Path, memory_limit: str = "1GB") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.memory_limit = memory_limit
        self.con = duckdb.connect()
        _configure(self.con, memory_limit, self.directory / "spill")
        crypt.encrypt_scratch(self.con, self.directory)  # its spill holds every record
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
        """The `fields` of the staged records `idx` (one bounded batch), in the order of `idx`."""
        self.con.register("wanted", pa.table({"idx": pa.array(idx, pa.int64())}))
        try:
            columns = ", ".join(f"s.{f}" for f in fields)
            rows = self.con.execute(
                f"SELECT s.idx, {columns} FROM staged s SEMI JOIN wanted w ON s.idx = w.idx"
            ).fetchall()
        finally:
            self.con.unregister("wanted")
        by_idx = {row[0]: row[1:] for row in rows}
        return [by_idx[i] for i in idx.tolist()]

    def write_store(self, path: Path, decisions: pa.Table, meta: Mapping[str, str]) -> None:
        """Create the published store at `path` from the staged tables and the decisions."""
        con = self.con
        con.register("decided", decisions.cast(DECISION_SCHEMA))
        con.execute("CREATE OR REPLACE TABLE decisions AS SELECT * FROM decided")
        con.unregister("decided")
        rows = sorted(meta.items())
        con.register("incoming", pa.table({"key": [k for k, _ in rows],
                                           "value": [v for _, v in rows]}))  # fmt: skip
        con.execute("CREATE OR REPLACE TABLE meta_rows AS SELECT * FROM incoming")
        con.unregister("incoming")
        crypt.attach(con, path, "store", read_only=False)  # encrypted when a key is set
        try:
            con.execute("USE store")
            for statement in DDL:
                con.execute(statement)
            records = ", ".join(f"s.{name}" for name in RECORD_SCHEMA.names)
            con.execute(
                f"INSERT INTO records SELECT {records} FROM memory.staged s "
                "ANTI JOIN memory.decisions d ON s.idx = d.idx"
            )
            # The records duplicates point at: a few per cluster, a small join side.
            con.execute(
                "CREATE TEMP TABLE targets AS SELECT s.idx, s.id, s.rid FROM memory.staged s "
                "SEMI JOIN memory.decisions d ON s.idx = d.of_idx"
            )
            con.execute(
                f"INSERT INTO duplicates SELECT {records}, o.id, o.rid, d.method, d.similarity "
                "FROM memory.staged s JOIN memory.decisions d ON s.idx = d.idx "
                "JOIN targets o ON o.idx = d.of_idx"
            )
            # A filter's drops have no record kept in their place (of_idx -1).
            con.execute(
                f"INSERT INTO filtered SELECT {records}, d.method, d.similarity, d.threshold, "
                "d.bound, d.detail FROM memory.staged s JOIN memory.decisions d "
                "ON s.idx = d.idx WHERE d.of_idx = -1"
            )
            con.execute("DROP TABLE targets")
            for name in ("rejected", "preferences", "pii_redactions", "label_corrections"):
                con.execute(f"INSERT INTO {name} SELECT * FROM memory.{name}")
            con.execute("INSERT INTO meta SELECT key, value FROM memory.meta_rows")
            con.execute("CHECKPOINT store")
        finally:
            con.execute("USE memory")
            con.execute("DETACH store")

    def write_records_parquet(self, out: Path, rows_per_group: int) -> None:
        """Stream the kept records (after `write_store`), in input order, into Parquet with
        fixed settings: one row group per `rows_per_group` rows, the caller sizes it to
        bound memory. Read from the uncompressed scratch tables, not the store: scanning
        a compressed row group of long texts pins more memory than DuckDB's limit allows."""
        self.con.execute("SET threads = 1")  # one ordered scan: no reorder buffers to hold
        names = ", ".join(f"s.{name}" for name in RECORD_SCHEMA.names)
        reader = self.con.sql(
            f"SELECT {names} FROM staged s ANTI JOIN decisions d ON s.idx = d.idx"
        ).to_arrow_reader(rows_per_group)
        with pq.ParquetWriter(
            out, RECORD_SCHEMA, compression="zstd", compression_level=3,
            write_statistics=True, use_dictionary=True,
        ) as writer:  # fmt: skip
            for batch in reader:  # one row group per batch: memory holds one batch
                writer.write_table(pa.Table.from_batches([batch]).cast(RECORD_SCHEMA))

    def close(self) -> None:
        self.con.close()
