"""Passages for a prompt: hits, their neighbouring session turns, near-identical ones merged,
and their rendering into the filled template with numbered citations."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.rag.settings import RagSettings
from pipeline.sample.similarity import jaccard

_WORD = re.compile(r"\w+")


@dataclass
class Passage:
    """One record as the generator will read it, and where it came from."""

    id: str
    rid: int
    prompt: str
    response: str | None
    session_id: str | None
    turn: int | None
    role: str  # "hit" (retrieved) or "neighbour" (a turn beside a hit in its session)
    group: int  # rank of the hit it belongs to: passages of one hit sit together
    position: int = 0  # place in the session, so a hit and its neighbours read in turn order
    of: str | None = None  # a neighbour's hit
    score: float | None = None
    scores: dict[str, float | None] | None = None
    merged: list[str] = field(default_factory=list)  # near-identical records folded into this
    truncated: bool = False
    shingles: frozenset = frozenset()

    @property
    def text(self) -> str:
        return f"Q: {self.prompt}\nA: {self.response}" if self.response else self.prompt

    def citation(self, n: int) -> dict[str, Any]:
        """How the caller sees this passage: its number, record id, scores and provenance."""
        return {
            "n": n, "id": self.id, "rid": self.rid, "role": self.role, "of": self.of,
            "score": self.score, "scores": self.scores, "merged": list(self.merged),
            "truncated": self.truncated, "session_id": self.session_id, "turn": self.turn,
        }  # fmt: skip


def passage_of(record: dict[str, Any], role: str, group: int, ngram: int, **extra: Any) -> Passage:
    """A Passage from a store record (whole text, not a search snippet)."""
    passage = Passage(
        id=record["id"], rid=int(record["rid"]), prompt=record["prompt"],
        response=record.get("response"), session_id=record.get("session_id"),
        turn=record.get("turn"), role=role, group=group, **extra,
    )  # fmt: skip
    passage.shingles = word_shingles(passage.text, ngram)
    return passage


def word_shingles(text: str, n: int) -> frozenset[tuple[str, ...]]:
    """Word n-grams ignoring case and punctuation: "today?" and "Today" are one word here."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).lower())
    if len(words) < n:
        return frozenset({tuple(words)})
    return frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def merge_near_identical(passages: Sequence[Passage], threshold: float) -> list[Passage]:
    """Keep the first of each group of near-identical passages; the others join its `merged`."""
    kept: list[Passage] = []
    for passage in passages:
        twin = next((k for k in kept if jaccard(k.shingles, passage.shingles) >= threshold), None)
        if twin is None:
            kept.append(passage)
        else:
            twin.merged.append(passage.id)
    return kept


def neighbours_of(
    hits: Sequence[Passage],
    sessions: dict[str, list[dict[str, Any]]],
    settings: RagSettings,
) -> list[Passage]:
    """The turns just before and after each of the top hits in its session (scope applied by
    the store), in hit order; turns already present as hits are left out."""
    present = {p.id for p in hits} | {m for p in hits for m in p.merged}
    out: list[Passage] = []
    if settings.neighbours == 0:
        return out
    for hit in hits[: settings.neighbour_hits]:
        turns = sessions.get(hit.session_id or "", []) if hit.session_id else []
        where = next((i for i, t in enumerate(turns) if t["id"] == hit.id), None)
        if where is None:
            continue
        hit.position = where
        lo, hi = max(0, where - settings.neighbours), where + settings.neighbours + 1
        for i in range(lo, min(hi, len(turns))):
            if i == where or turns[i]["id"] in present:
                continue
            present.add(turns[i]["id"])
            out.append(
                passage_of(
                    turns[i],
                    "neighbour",
                    hit.group,
                    settings.merge_ngram,
                    position=i,
                    of=hit.id,
                )
            )
    return out


SEPARATOR = "\n\n"  # between passages in the context


def in_order(passages: Sequence[Passage]) -> list[Passage]:
    """Context order: hits by rank, each with its neighbours in session order."""
    return sorted(passages, key=lambda p: (p.group, p.position, p.role != "hit"))


def block(passage: Passage, n: int, settings: RagSettings) -> str:
    """One passage as the context shows it, numbered `n` (conf/rag `passage`)."""
    p = passage
    return settings.passage.format(
        n=n,
        id=p.id,
        text=p.text,
        prompt=p.prompt,
        response=p.response or "",
        session_id=p.session_id or "",
        turn="" if p.turn is None else p.turn,
    )


def render(
    passages: Sequence[Passage], question: str, settings: RagSettings
) -> tuple[str, str, list[Passage]]:
    """(filled prompt, context, passages in context order): numbered 1.. in that order."""
    ordered = in_order(passages)
    context = SEPARATOR.join(block(p, n, settings) for n, p in enumerate(ordered, start=1))
    return settings.template.format(context=context, question=question), context, ordered
