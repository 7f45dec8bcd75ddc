"""Erase a user: every place the platform keeps their rows or text, as a journal.

Under the writer lock (pipeline/service/writer.py) an erasure records its intent in the
journal (pipeline/service/journal.py), appends sha256(user id) to data/erasures.txt so no
later dedup brings the user back, gathers the user's record ids, and then applies itself to
each place in turn, recording each step in the journal entry; the audit row comes last but
one and removing the entry last. Every step is idempotent, so a killed erasure is finished
by whoever takes the lock next. Files are replaced by rename, never edited in place.
What it reaches and what it cannot: docs/erasure.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import UserInputError
from pipeline.io.atomic import atomic_path, write_durably
from pipeline.io.files import read_erasures, user_hash
from pipeline.io.pause import point
from pipeline.service import journal
from pipeline.service.settings import ServicePaths

NOTHING_YET = "nothing was erased yet; run the erasure again when it has finished"


def add_to_erasure_list(path: str | Path, digest: str) -> bool:
    """Append a hash to the erasure list (atomically, fsynced); False when already there."""
    path = Path(path)
    if digest in read_erasures(path):  # the dedup stage's reader: one format, one parser
        return False
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    write_durably(path, (old + digest + "\n").encode("utf-8"))
    return True


def erase_user(
    paths: ServicePaths,
    user_id: str,
    erased_by: str,
    wait: float | None = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Remove every trace of `user_id` the platform holds; returns the counts removed.

    Waits up to `wait` seconds for the writer lock (calling `on_wait(holder)` first), then
    raises BusyError saying nothing was erased yet.
    """
    from pipeline.service.writer import writer

    if not user_id or not user_id.strip():
        raise UserInputError("user id: must not be empty")
    try:
        user_id.encode("utf-8")
    except UnicodeEncodeError:
        raise UserInputError("user id: holds an unpaired surrogate; not a user id") from None
    with writer(paths, f"pipeline erase ({erased_by})", wait, on_wait, NOTHING_YET, False):
        entry = journal.begin(paths.erasure_journal, user_id, erased_by)
        point("erase:intent")
        from pipeline.service.writer import complete_pending

        return complete_pending(paths)[entry.user_hash]


def pending_erasures(paths: ServicePaths) -> list[dict[str, Any]]:
    """Unfinished erasures (hash, when, by whom; never the user id), oldest first."""
    return [entry.public() for entry in journal.pending(paths.erasure_journal)]


def apply_entry(paths: ServicePaths, entry: journal.Entry) -> dict[str, Any]:
    """Apply one journalled erasure to every place (the caller holds the writer lock)."""
    from pipeline.service import erase_steps as steps

    user, digest = entry.user_id, entry.user_hash

    def step(name: str, action: Callable[[], Any]) -> None:
        if name not in entry.done:
            entry.done[name] = action()
            journal.save(paths.erasure_journal, entry)
        point(f"erase:{name}")

    step("listed", lambda: add_to_erasure_list(paths.erasures, digest))
    if entry.plan is None:
        # Gathered before anything is removed: a resumed erasure still knows the record ids
        # after the store has lost them. The embedding cache is keyed by the texts, so it
        # is cleared now, while the texts can still be read.
        plan, texts = steps.gather(paths, user)
        entry.done["embed_cache"] = steps.forget_embeddings(paths, texts, digest)
        entry.plan = plan
        journal.save(paths.erasure_journal, entry)
    point("erase:planned")
    plan = entry.plan
    step("store", lambda: steps.erase_store(paths, user, digest))
    step("parquet_rows", lambda: steps.erase_parquet(paths.records, user))
    step("index_removed", lambda: steps.erase_index(paths.index_dir, plan["all_rids"]))
    step("feedback_snapshot", lambda: steps.erase_feedback_snapshot(paths.feedback, plan))
    step("judgments_snapshot", lambda: steps.erase_feedback_snapshot(paths.judgments, plan))
    step("mistakes", lambda: steps.erase_mistakes(paths, plan["ids"]))
    step("service", lambda: steps.erase_service_db(paths, entry))
    journal.finish(paths.erasure_journal, entry)
    return _summary(entry)


def _summary(entry: journal.Entry) -> dict[str, Any]:
    done = entry.done
    store, service = done["store"], done["service"]
    return {
        "user_hash": entry.user_hash,
        "erased_by": entry.requested_by,
        **store,
        "feedback": service["feedback"],
        "index_removed": done["index_removed"],
        "parquet_rows": done["parquet_rows"],
        "embedding_cache": done["embed_cache"],
        "feedback_snapshot": done["feedback_snapshot"],
        "mistakes": done["mistakes"],
        "queries_scrubbed": service["queries_scrubbed"],
        "keys_rescoped": service.get("keys_rescoped", 0),
        "erased_at": service["erased_at"],
    }


def erase_from_parquet(path: Path, user_id: str) -> list[int]:
    """Rewrite records.parquet without the user's rows; returns their rids.

    Streams one row group at a time (with the file's own schema and row-group sizes), so a
    file larger than memory can be rewritten; untouched when the user has no row.
    """
    if not path.exists():
        return []
    source = pq.ParquetFile(path)
    ids = source.read(columns=["rid", "user_id"])
    mine = pc.fill_null(pc.equal(ids["user_id"], user_id), False)
    if not pc.any(mine).as_py():
        return []
    rids = sorted(ids.filter(mine)["rid"].to_pylist())
    # The writer closes before atomic_path renames (contexts exit in reverse order).
    with (
        atomic_path(path) as tmp,
        pq.ParquetWriter(tmp, source.schema_arrow, compression="zstd") as out,
    ):
        for group in range(source.num_row_groups):
            table = source.read_row_group(group)
            keep = pc.invert(pc.fill_null(pc.equal(table["user_id"], user_id), False))
            out.write_table(table.filter(keep))
    return rids


__all__ = [
    "NOTHING_YET",
    "add_to_erasure_list",
    "apply_entry",
    "erase_from_parquet",
    "erase_user",
    "pending_erasures",
    "user_hash",
]
