"""Opening DuckDB files with errors a user can act on."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.errors import BusyError, NotFoundError


def connect(path: str | Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file; a missing file or a file locked by a writer raises a clear error."""
    path = Path(path)
    if read_only and not path.exists():
        raise NotFoundError(f"{path}: no store yet; run `dvc repro` (or `pipeline dedup`) first")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise BusyError(
                f"{path}: the store is in use by another process ({_holder(exc)}); "
                "wait for it to finish and try again"
            ) from exc
        raise


def _holder(exc: Exception) -> str:
    text = str(exc)
    marker = "PID "
    if marker in text:
        pid = text.split(marker, 1)[1].split(")", 1)[0].split()[0]
        return f"pid {pid}"
    return "another writer"
