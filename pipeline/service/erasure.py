"""Erase a user: their records leave the store, records.parquet, the indexes and the feedback,
and their id's hash joins data/erasures.txt so the next `dvc repro` does not bring them back.

The erasure list is written first: if anything later fails, a re-run (or the next dedup
run) still completes the erasure. Every file is replaced by rename, never edited in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import UserInputError
from pipeline.io.atomic import atomic_path
from pipeline.io.files import read_erasures, user_hash
from pipeline.service.settings import ServicePaths
from pipeline.store import service as db
from pipeline.store.erasure import StoreErasure, copy_without_user, user_rids


def add_to_erasure_list(path: str | Path, digest: str) -> bool:
    """Append a hash to the erasure list (atomically); False when it is already there."""
    path = Path(path)
    if digest in read_erasures(path):  # the dedup stage's reader: one format, one parser
        return False
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(old + digest + "\n", encoding="utf-8")
    return True


def _erase_from_parquet(path: Path, user_id: str) -> list[int]:
    """Rewrite records.parquet without the user's rows; returns their rids."""
    if not path.exists():
        return []
    table = pq.read_table(path)
    mine = pc.fill_null(pc.equal(table["user_id"], user_id), False)
    if not pc.any(mine).as_py():
        return []
    rids = sorted(table.filter(mine)["rid"].to_pylist())
    with atomic_path(path) as tmp:
        pq.write_table(table.filter(pc.invert(mine)), tmp)
    return rids


def erase_user(paths: ServicePaths, user_id: str, erased_by: str) -> dict[str, Any]:
    """Remove every trace of `user_id` the platform holds; returns the counts removed."""
    if not user_id or not user_id.strip():
        raise UserInputError("user id: must not be empty")
    digest = user_hash(user_id)
    add_to_erasure_list(paths.erasures, digest)

    removed = StoreErasure()
    if paths.store.exists():
        kept, dups = user_rids(paths.store, user_id)
        if kept or dups:
            with atomic_path(paths.store) as tmp:
                removed = copy_without_user(paths.store, tmp, user_id)
    parquet_rids = _erase_from_parquet(paths.records, user_id)

    index_rids = set(removed.kept_rids) | set(parquet_rids)
    index_removed = 0
    if index_rids and paths.index_dir.exists():
        from pipeline.index import erase_rids

        index_removed = erase_rids(paths.index_dir, index_rids)

    all_rids = sorted(set(removed.all_rids) | set(parquet_rids))
    with db.open_service_db(paths.service_db) as con:
        feedback = db.delete_feedback(con, all_rids) if all_rids else 0
        if all_rids:
            db.scrub_query_results(con, all_rids)
        row: dict[str, Any] = {
            "erased_by": erased_by,
            "user_hash": digest,
            "records": removed.records,
            "duplicates": removed.duplicates,
            "preferences": removed.preferences,
            "pii_redactions": removed.pii_redactions,
            "rejected": removed.rejected,
            "feedback": feedback,
            "index_removed": index_removed,
        }
        row["erased_at"] = db.insert_erasure(con, row)
    row["parquet_rows"] = len(parquet_rids)
    return row
