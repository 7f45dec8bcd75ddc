"""Opening the store: clear errors, and long-lived readers that see a replaced file."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from pipeline.errors import BusyError, NotFoundError
from pipeline.store.db import connect, open_snapshot, snapshot_cursor


def _store(path: Path, n: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE records AS SELECT range AS rid FROM range(?)", [n])
    con.close()


def test_missing_store_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="dvc repro"):
        connect(tmp_path / "none.duckdb")
    with pytest.raises(NotFoundError):
        open_snapshot(tmp_path / "none.duckdb")


def test_snapshot_sees_a_store_replaced_by_rename(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    _store(store, 3)
    old = open_snapshot(store)
    assert snapshot_cursor(old).execute("SELECT count(*) FROM records").fetchone() == (3,)
    _store(tmp_path / "new.duckdb", 5)
    os.replace(tmp_path / "new.duckdb", store)
    # The old connection is still open (a server finishing a request on it) ...
    assert snapshot_cursor(old).execute("SELECT count(*) FROM records").fetchone() == (3,)
    # ... and a reopened one reads the new file, not DuckDB's cached instance of the path.
    new = open_snapshot(store)
    assert snapshot_cursor(new).execute("SELECT count(*) FROM records").fetchone() == (5,)


def test_a_second_writer_gets_a_busy_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    store = tmp_path / "store.duckdb"
    _store(store, 1)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,sys; c=duckdb.connect({str(store)!r}); "
            "print('ok', flush=True); sys.stdin.read()",  # holds until the test lets go
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(BusyError, match="in use by another process"):
            connect(store, read_only=False)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_search_result_columns_are_the_record_fields() -> None:
    from pipeline.record import USER_FIELDS
    from pipeline.store.search import RESULT_COLUMNS

    assert ("rid", *USER_FIELDS) == RESULT_COLUMNS
