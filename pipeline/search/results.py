"""A search hit as the CLI, the Python API and the HTTP service return it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from pipeline.record import RESULT_FIELDS
from pipeline.store.annotations import COLUMNS as SIDE_COLUMNS
from pipeline.store.rows import api_time


@dataclass
class SearchResult:
    """One record found by a search, with its scores, snippets and metadata."""

    id: str
    rid: int
    score: float  # the score the results are ranked by (`scores.fused`)
    scores: dict[str, float | None]  # vector (cosine), keyword (BM25), fused
    prompt: str  # snippet
    response: str | None  # snippet
    label: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    origin: str | None = None
    source: str | None = None
    tags: list[str] = field(default_factory=list)
    quality: float | None = None
    created_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    session: list[dict[str, Any]] | None = None  # other turns, when asked for
    # What later stages learned of the record, by column: every side file's (anomaly_score,
    # ...; pipeline/store/annotations.py), None where not computed. Top-level keys in JSON.
    annotations: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as the API's ISO 8601 text; `session` only when requested;
        the annotations as keys of their own, after the record's fields."""
        out = asdict(self)
        out.update(out.pop("annotations"))
        out["created_at"] = api_time(self.created_at)
        if self.session is None:
            out.pop("session")
        else:
            out["session"] = [
                {**turn, "created_at": api_time(turn.get("created_at"))} for turn in self.session
            ]
        return out


class SearchResults(list):
    """The hits of one search, best first (a list), and the query-log id of the search:
    feedback names it to grade these hits (`pipeline feedback --query`, docs/retrieval.md)."""

    def __init__(self, hits: Any = (), query_id: str | None = None) -> None:
        super().__init__(hits)
        self.query_id = query_id


# The record fields a hit carries as they are; prompt and response become snippets.
_COPIED = tuple(
    f.name
    for f in fields(SearchResult)
    if f.name in RESULT_FIELDS and f.name not in ("rid", "prompt", "response")
)


def to_results(
    rids: Any,
    scores: list[tuple[float, float | None, float | None]],
    records: dict[int, dict[str, Any]],
    sessions: dict[str, list[dict[str, Any]]],
    with_session: bool,
    snippet_chars: int,
) -> list[SearchResult]:
    """Hits in rank order from (fused, vector, keyword) scores and the store's records."""
    out = []
    for rid, (score, vector, keyword) in zip(rids, scores, strict=True):
        record = records.get(int(rid))
        if record is None:
            continue  # in the index, no longer in the store: `pipeline index verify` reports it
        session = None
        if with_session:
            turns = sessions.get(record["session_id"], []) if record["session_id"] else []
            session = [t for t in turns if t["rid"] != record["rid"]]
        out.append(
            SearchResult(
                rid=int(record["rid"]),
                score=float(score),
                scores={"vector": vector, "keyword": keyword, "fused": float(score)},
                prompt=snippet(record["prompt"], snippet_chars),
                response=snippet(record["response"], snippet_chars),
                session=session,
                annotations={name: record.get(name) for name in SIDE_COLUMNS},
                **{name: record[name] for name in _COPIED},
            )
        )
    return out


def snippet(text: str | None, limit: int) -> str | None:
    """The first `limit` characters on one line, with an ellipsis when cut."""
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)].rstrip() + "…"
