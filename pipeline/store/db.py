"""Opening DuckDB files with errors a user can act on."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.errors import BusyError, NotFoundError
from pipeline.store import crypt
from pipeline.store.annotations import create_view

# The store's tables first, then the annotated view of the in-memory database.
SEARCH_PATH = "SET search_path = 'store.main,memory.main'"


def connect(path: str | Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file, encrypted when a key is set (pipeline/store/crypt.py); a missing
    file, a file locked by a writer or a missing or wrong key raises a clear error."""
    path = Path(path)
    if read_only and not path.exists():
        raise NotFoundError(f"{path}: no store yet; run `dvc repro` (or `pipeline dedup`) first")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if crypt.db_key() is not None:
            return crypt.open_encrypted(path, read_only)
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise BusyError(
                f"{path}: the store is in use by another process ({_holder(exc)}); "
                "wait for it to finish and try again"
            ) from exc
        raise
    except duckdb.Error as exc:  # an encrypted file opened without its key
        explained = crypt.explain(exc, path)
        if explained is exc:
            raise
        raise explained from exc


def _holder(exc: Exception) -> str:
    text = str(exc)
    marker = "PID "
    if marker in text:
        pid = text.split(marker, 1)[1].split(")", 1)[0].split()[0]
        return f"pid {pid}"
    return "another writer"


def open_snapshot(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the store file as it is now, for long-lived readers.

    `duckdb.connect(path)` returns this process's cached instance of `path` while any
    connection to it is open, so a server that reconnects after the file was replaced by
    rename would keep reading the old file. ATTACH into a private in-memory database opens
    the file anew. Use `snapshot_cursor` for per-thread cursors.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path}: no store yet; run `dvc repro` (or `pipeline dedup`) first")
    con = duckdb.connect()
    try:
        crypt.attach(con, path, "store", read_only=True)
    except BaseException:
        con.close()
        raise
    # The side files' columns (pipeline/store/annotations.py), in the private in-memory
    # database so that every cursor of this connection sees the view.
    create_view(con, path, "memory.main", "store.main.records")
    con.execute("USE store")
    con.execute(SEARCH_PATH)
    return con


def snapshot_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor of an `open_snapshot` connection; cursors do not inherit `USE`."""
    cursor = con.cursor()
    cursor.execute("USE store")
    cursor.execute(SEARCH_PATH)
    return cursor
