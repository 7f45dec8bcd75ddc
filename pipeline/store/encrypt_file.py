"""`pipeline db encrypt`: turn an existing plain DuckDB file into an encrypted one in place
(the service database holds keys and feedback that no stage rebuilds)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.errors import BusyError, NotFoundError, UserInputError
from pipeline.io.atomic import atomic_path
from pipeline.store import crypt


def encrypt_file(path: str | Path) -> None:
    """Copy the plain file `path` into an encrypted file with today's key, renamed over it.

    The plain file stays attached read-write until the rename, so its lock keeps every
    other process from writing it meanwhile (they wait, then open the encrypted file).
    """
    path = Path(path)
    if crypt.db_key() is None:
        raise UserInputError(f"{path}: set {crypt.KEY_ENV} to the key to encrypt with")
    if not path.exists():
        raise NotFoundError(f"{path}: no such file")
    con = duckdb.connect()
    try:
        try:
            con.execute("ATTACH ? AS plain", [str(path)])
        except duckdb.Error as exc:
            text = str(exc)
            if "without a key" in text:
                raise UserInputError(f"{path}: already encrypted") from exc
            if "lock" in text.lower():
                raise BusyError(f"{path}: in use by another process; try again") from exc
            raise
        con.execute("CHECKPOINT plain")  # no WAL of the plain file is left to replay later
        with atomic_path(path) as tmp:
            crypt.attach(con, tmp, "fresh", read_only=False)
            try:
                con.execute("COPY FROM DATABASE plain TO fresh")
            finally:
                con.execute("DETACH fresh")
    finally:
        con.close()
