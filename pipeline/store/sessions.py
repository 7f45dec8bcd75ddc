"""The session of each of a few records: what group-by-session search diversifies by."""

from __future__ import annotations

from collections.abc import Iterable

import duckdb


def session_ids(con: duckdb.DuckDBPyConnection, rids: Iterable[int]) -> dict[int, str | None]:
    """rid -> session_id (None for a record without one) of the kept records among `rids`."""
    wanted = [int(r) for r in rids]
    if not wanted:
        return {}
    found = con.execute(
        "SELECT rid, session_id FROM records WHERE rid IN (SELECT unnest(?::BIGINT[]))",
        [wanted],
    ).fetchall()
    return {int(rid): session for rid, session in found}
