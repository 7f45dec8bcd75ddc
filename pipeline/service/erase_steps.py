"""The steps of an erasure, one per place that holds a user's rows or text; each idempotent.

pipeline/service/erasure.py runs them in order under the writer lock and journals each.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.io.atomic import atomic_path
from pipeline.service import journal
from pipeline.service.settings import ServicePaths


def gather(paths: ServicePaths, user_id: str) -> tuple[dict[str, Any], list[str]]:
    """The user's record ids and rids (store and records.parquet), and their texts."""
    import pyarrow.parquet as pq

    from pipeline.store.erasure import user_rows

    rows = user_rows(paths.store, user_id) if paths.store.exists() else None
    kept = set(rows.kept_rids) if rows else set()
    every = set(rows.all_rids) if rows else set()
    ids = set(rows.ids) if rows else set()
    pairs = list(rows.texts) if rows else []
    if paths.records.exists():
        columns = ["rid", "id", "prompt", "response", "user_id"]
        # The filter is applied per row group as it is read: only the user's rows are held.
        mine = pq.read_table(paths.records, columns=columns, filters=[("user_id", "=", user_id)])
        kept |= set(mine["rid"].to_pylist())
        every |= set(mine["rid"].to_pylist())
        ids |= set(mine["id"].to_pylist())
        pairs += zip(mine["prompt"].to_pylist(), mine["response"].to_pylist(), strict=True)
    # Both embed.text modes: the cache may hold vectors from either.
    texts = sorted({t for p, r in pairs for t in (p, f"{p}\n{r}" if r else p)})
    plan = {"kept_rids": sorted(kept), "all_rids": sorted(every), "ids": sorted(ids)}
    return plan, texts


def forget_embeddings(paths: ServicePaths, texts: list[str], digest: str) -> int:
    """Delete the vectors of the user's texts from the embedding cache and tombstone them."""
    from pipeline.embed.cache import forget

    return forget(paths.embed_cache, texts, name=digest)


def erase_store(paths: ServicePaths, user_id: str, digest: str) -> dict[str, int]:
    """Replace the store by a copy without the user's rows (records, duplicates,
    preferences, PII counts, rejected rows); counts removed per table."""
    from pipeline.store.erasure import StoreErasure, copy_without_user, count_user_rows

    if not paths.store.exists():
        return asdict(StoreErasure())
    if count_user_rows(paths.store, user_id, digest).total() == 0:
        return asdict(StoreErasure())
    with atomic_path(paths.store) as tmp:
        removed = copy_without_user(paths.store, tmp, user_id, digest)
    return asdict(removed)


def erase_parquet(records: Path, user_id: str) -> int:
    """Rewrite records.parquet without the user's rows; how many went."""
    from pipeline.service.erasure import erase_from_parquet

    return len(erase_from_parquet(records, user_id))


def erase_index(index_dir: Path, rids: list[int]) -> int:
    """Remove the rids' vectors and keyword rows (and words only they had); how many."""
    from pipeline.index import erase_rids
    from pipeline.index.manifest import MANIFEST

    if not rids or not (index_dir / MANIFEST).exists():
        return 0
    return erase_rids(index_dir, set(rids))


def erase_feedback_snapshot(path: Path, plan: dict[str, Any]) -> int:
    """Rewrite data/feedback.parquet without the user's records; how many rows went."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not path.exists() or not (plan["ids"] or plan["all_rids"]):
        return 0
    table = pq.read_table(path)
    mine = pc.is_in(table["id"], pa.array(plan["ids"], pa.string()))
    if "rid" in table.column_names:
        mine = pc.or_(mine, pc.is_in(table["rid"], pa.array(plan["all_rids"], pa.int64())))
    mine = pc.fill_null(mine, False)
    gone = int(pc.sum(mine).as_py() or 0)
    if gone:
        with atomic_path(path) as tmp:
            pq.write_table(table.filter(pc.invert(mine)), tmp)
    return gone


def erase_mistakes(paths: ServicePaths, ids: list[str]) -> int:
    """Drop the user's records from reports/eval/mistakes.json and from the mistakes table
    of every run in the local MLflow artifact store; entries removed."""
    from pipeline.evaluate.mistakes import scrub_artifacts, scrub_report

    wanted = set(ids)
    if not wanted:
        return 0
    return scrub_report(paths.reports / "eval" / "mistakes.json", wanted) + scrub_artifacts(
        paths.mlruns, wanted
    )


def erase_service_db(paths: ServicePaths, entry: journal.Entry) -> dict[str, Any]:
    """Feedback rows and query-log traces of the user's records; the audit row; then a
    fresh copy of the file, so deleted text does not linger in its free blocks."""
    from pipeline.store import service as db
    from pipeline.store import service_erasure as erasure_sql
    from pipeline.store.erasure import token_pattern

    plan, done = entry.plan or {}, entry.done
    rids = plan.get("all_rids", [])
    pattern = token_pattern(entry.user_id)
    with db.open_service_db(paths.service_db) as con:
        feedback = db.delete_feedback(con, rids) if rids else 0
        # Blanked: a query that returned one of the user's records (its text was likely
        # about them), or whose text or filters hold the user id as a whole token.
        candidates = erasure_sql.queries_mentioning(con, rids, entry.user_id)
        blank = [
            rowid
            for rowid, text, filters, returned in candidates
            if returned or pattern.search(text) or any(pattern.search(f) for f in filters)
        ]
        erasure_sql.blank_queries(con, blank)
        keys = _rescope_keys(con, entry)
        if rids:
            db.scrub_query_results(con, rids)
        store = done.get("store", {})
        row = {
            "erased_by": entry.requested_by,
            "user_hash": entry.user_hash,
            **{k: store.get(k, 0) for k in
               ("records", "duplicates", "preferences", "pii_redactions", "rejected")},
            "feedback": feedback,
            "index_removed": done.get("index_removed", 0),
        }  # fmt: skip
        erased_at = db.erasure_recorded(con, entry.user_hash, entry.requested_at)
        if erased_at is None:
            erased_at = db.insert_erasure(con, row)
        erasure_sql.compact_into_fresh_file(con, paths.service_db)
    return {
        "feedback": feedback,
        "queries_scrubbed": len(blank),
        "keys_rescoped": keys,
        "erased_at": erased_at,
    }


def _rescope_keys(con: Any, entry: journal.Entry) -> int:
    """API keys scoped to the user lose the id; a key scoped to them alone is revoked (an
    empty scope would mean every user) and keeps only the hash, as the audit does."""
    from pipeline.store import service_erasure as erasure_sql

    keys = erasure_sql.keys_scoped_to(con, entry.user_id)
    for key_id, scope in keys:
        others = [u for u in scope if u != entry.user_id]
        erasure_sql.rescope_key(
            con, key_id, others or [f"sha256:{entry.user_hash}"], revoke=not others
        )
    return len(keys)
