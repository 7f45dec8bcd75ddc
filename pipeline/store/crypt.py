"""Encryption at rest of the DuckDB files (the dedup store, the service database).

When `PIPELINE_DB_KEY` is set, every DuckDB file the pipeline opens is ATTACHed with
DuckDB's own encryption (`ENCRYPTION_KEY`, AES-GCM), and every file it creates is
encrypted; when it is unset, files are opened exactly as before (`duckdb.connect(path)`).
What is and is not encrypted, and how to rotate or add a key: docs/encryption.md.

The variable's name is fixed rather than configured: the files are opened by stages under
DVC, the CLI, the service and its workers, some before any config is read, and a fixed
name means no two of them can disagree about where the key is, and keeps the key and its
name out of params.yaml and MLflow. The key is bound as a query parameter, never spliced
into SQL, so it cannot surface in a DuckDB error message either.

DuckDB (2.0) reads encrypted files with the crypto it carries (mbedTLS), but writes them
only with OpenSSL's, which its `httpfs` extension brings (`INSTALL httpfs` once, on a
machine with network). Without it a write fails with an error that says so, unless
`PIPELINE_DB_INSECURE_WRITES=1` lets DuckDB write with mbedTLS and a nonce source that is
not cryptographically secure (DuckDB's own `force_mbedtls_unsafe`): for tests and trials
on machines without httpfs, never for data that must stay secret.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from pipeline.errors import UserInputError

KEY_ENV = "PIPELINE_DB_KEY"
INSECURE_WRITES_ENV = "PIPELINE_DB_INSECURE_WRITES"
DOCS = "docs/encryption.md"


def db_key() -> str | None:
    """The key from the environment, or None (unset or empty: files are not encrypted)."""
    return os.environ.get(KEY_ENV) or None


def attach(con: duckdb.DuckDBPyConnection, path: str | Path, alias: str, read_only: bool) -> None:
    """ATTACH `path` as `alias` to `con`, with the key when one is set."""
    key = db_key()
    options = ["READ_ONLY"] if read_only else []
    params: list[str] = [str(path)]
    if key is not None:
        _crypto(con, path, write=not read_only)
        options.insert(0, "ENCRYPTION_KEY ?")
        params.append(key)
    suffix = f" ({', '.join(options)})" if options else ""
    try:
        con.execute(f"ATTACH ? AS {_quoted(alias)}{suffix}", params)
    except duckdb.Error as exc:
        explained = explain(exc, path)
        if explained is exc:
            raise
        raise explained from exc


def open_encrypted(path: str | Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the encrypted file `path` (ATTACH, then USE).

    The catalog is named after the file's stem, as `duckdb.connect(path)` names it, so SQL
    that names it reads the same either way. Unlike `duckdb.connect(path)`, each call opens
    a private instance: callers that write already hold a lock per file (service.py,
    pipeline/io/lock.py), so two writers of one file in one process do not happen.
    """
    con = duckdb.connect()
    alias = Path(path).stem
    if alias in ("memory", "system", "temp"):  # DuckDB's own catalogs
        alias = f"{alias}_db"
    try:
        attach(con, path, alias, read_only)
        con.execute(f"USE {_quoted(alias)}")
    except BaseException:
        con.close()
        raise
    return con


def explain(exc: duckdb.Error, path: str | Path) -> Exception:
    """A user's error for DuckDB's refusals about keys; any other error unchanged."""
    text = str(exc)
    if "encrypted database" in text and "without a key" in text:
        return UserInputError(f"{path}: the file is encrypted; set {KEY_ENV} to its key ({DOCS})")
    if "Wrong encryption key" in text:
        return UserInputError(
            f"{path}: {KEY_ENV} is not the key this file was encrypted with ({DOCS})"
        )
    if "key is explicitly specified" in text and "not encrypted" in text:
        return UserInputError(
            f"{path}: {KEY_ENV} is set but the file is not encrypted; unset it, or encrypt "
            f"the file with `pipeline db encrypt {path}` ({DOCS})"
        )
    if "read-only crypto module" in text:
        return UserInputError(_NO_WRITER.format(path=path, env=KEY_ENV, docs=DOCS))
    return exc


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def encrypt_scratch(con: duckdb.DuckDBPyConnection, where: str | Path) -> None:
    """When a key is set, encrypt what `con` spills to its temp directory (the dedup stage's
    scratch holds every record, redacted but whole, and spills beyond its memory limit)."""
    if db_key() is not None:
        _crypto(con, where, write=True)


def _crypto(con: duckdb.DuckDBPyConnection, path: str | Path, write: bool) -> None:
    """Give `con` a crypto module that can write (httpfs's OpenSSL, or the opt-in unsafe
    mbedTLS) and encrypt its temp files; a reader without one reads with DuckDB's own."""
    try:
        con.execute("LOAD httpfs")  # from the local extension directory: never downloads
    except duckdb.Error:
        if not write:
            return  # reading needs no more; a spilled sort is then not encrypted (docs)
        if os.environ.get(INSECURE_WRITES_ENV) != "1":
            raise UserInputError(_NO_WRITER.format(path=path, env=KEY_ENV, docs=DOCS)) from None
        con.execute("SET force_mbedtls_unsafe = 'true'")
    con.execute("SET temp_file_encryption = true")


_NO_WRITER = (
    "{path}: writing an encrypted DuckDB file needs DuckDB's httpfs extension (OpenSSL): run "
    "`python -c \"import duckdb; duckdb.sql('INSTALL httpfs')\"` once with network, or unset "
    "{env} ({docs})"
)
