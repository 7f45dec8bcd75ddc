"""A dedup store holding given records, for search tests and benchmarks (the dedup stage
writes the real one)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from pipeline.store.db import connect
from pipeline.store.schema import DDL


def write_records_store(path: str | Path, table: pa.Table) -> None:
    """Create a store holding `table` (RECORD_SCHEMA) as its kept records."""
    con = connect(path, read_only=False)
    try:
        for statement in DDL:
            con.execute(statement)
        con.register("incoming_records", table)
        con.execute("INSERT INTO records SELECT * FROM incoming_records")
        con.unregister("incoming_records")
    finally:
        con.close()
