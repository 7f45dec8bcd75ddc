"""Feedback on records (a 1-5 score or thumbs up/down) and the per-record scores it yields.

`feedback_scores()` is the hook for the curation side: the dedup keep policy and the
`quality` filter read a record's mean feedback score in [0, 1] by its `id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError
from pipeline.service.keys import Principal
from pipeline.store import service as db
from pipeline.store.lookup import StoreReader, get_record

KINDS: tuple[str, ...] = ("score", "up", "down")


@dataclass(frozen=True)
class FeedbackScore:
    """The mean normalised feedback of one record, and how many events it averages."""

    rid: int
    score: float  # in [0, 1]: a 1-5 score maps to (s - 1) / 4, up to 1, down to 0
    count: int


def normalise(kind: str, score: float | None) -> float:
    """A feedback event as a number in [0, 1]."""
    if kind == "up":
        return 1.0
    if kind == "down":
        return 0.0
    if kind != "score":
        raise UserInputError(f"feedback kind {kind!r}: expected one of {', '.join(KINDS)}")
    if score is None or not 1.0 <= score <= 5.0:
        raise UserInputError(f"feedback score {score!r}: expected a number from 1 to 5")
    return (score - 1.0) / 4.0


def give_feedback(
    service_db: str | Path,
    store: StoreReader,
    principal: Principal,
    record_id: str,
    kind: str,
    score: float | None = None,
    comment: str | None = None,
    lock_timeout: float = 10.0,
) -> dict[str, Any]:
    """Feedback by a writer key on a record inside its scope: the one check for CLI and HTTP.

    ForbiddenError for a reader key or a record out of scope, NotFoundError for no record.
    """
    principal.require("writer")
    with store.cursor() as cur:  # released before waiting for the service DB
        record = get_record(cur, record_id, principal.scope)
    return add_feedback(service_db, principal, record, kind, score, comment, lock_timeout)


def add_feedback(
    service_db: str | Path,
    principal: Principal,
    record: dict[str, Any],
    kind: str,
    score: float | None = None,
    comment: str | None = None,
    lock_timeout: float = 10.0,
) -> dict[str, Any]:
    """Store one feedback event on a (found, in-scope) record by the key's identity."""
    row = {
        "record_id": record["id"],
        "rid": record["rid"],
        "key_id": principal.key_id,
        "key_name": principal.name,
        "kind": kind,
        "score": normalise(kind, score),
        "raw_score": score if kind == "score" else None,
        "comment": comment or None,
    }
    with db.open_service_db(service_db, lock_timeout=lock_timeout) as con:
        row["feedback_id"], row["created_at"] = db.insert_feedback(con, row)
    return row


def feedback_scores(service_db: str | Path) -> dict[str, FeedbackScore]:
    """Mean feedback per record id, for the keep policy and the quality filter."""
    if not Path(service_db).exists():
        return {}
    with db.open_service_db(service_db, read_only=True) as con:
        rows = db.feedback_aggregates(con)
    return {rid_str: FeedbackScore(rid, float(mean), int(n)) for rid_str, rid, mean, n in rows}


def write_feedback_scores(service_db: str | Path, path: str | Path) -> int:
    """Publish the per-record scores as a sorted Parquet file (a stable DVC dependency).

    The service DB changes with every logged query, so a stage should depend on this
    snapshot, not on the DB. Returns the number of records with feedback.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.io.atomic import atomic_path

    scores = feedback_scores(service_db)
    ids = sorted(scores)
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "rid": pa.array([scores[i].rid for i in ids], pa.int64()),
            "feedback_score": pa.array([scores[i].score for i in ids], pa.float64()),
            "feedback_count": pa.array([scores[i].count for i in ids], pa.int64()),
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return len(ids)
