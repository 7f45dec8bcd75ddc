"""The bootstrap query set: queries derived from the team's own kept records.

Until people have judged real queries, each bootstrap query is a 16-word window of one
kept prompt with every fourth word dropped and two adjacent letters swapped in 30% of the
words (as benchmarks/search_quality.py's "windows + typos", so exact keywords do not
decide it alone), and its one relevant record (grade 3) is the record it came from. It
measures whether a search finds a record from a partial, garbled memory of it; it is
labelled `bootstrap` everywhere, never mixed with judged queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WINDOW = 16
MIN_WORDS = 12  # shorter prompts make queries that are nearly the whole record
TYPO_RATE = 0.3


@dataclass(frozen=True)
class Query:
    """One evaluation query: its text, filters, and the graded record ids."""

    query_id: str
    text: str
    grades: dict[str, float]
    filters: tuple[str, ...] = field(default=())


def bootstrap_queries(ids: list[str], prompts: list[str], n: int, seed: int) -> list[Query]:
    """Up to n derived queries from the records (ids, prompts), chosen by a seeded draw."""
    rng = np.random.default_rng(seed)
    out: list[Query] = []
    for i in rng.permutation(len(ids)):
        words = (prompts[i] or "").split()
        if len(words) < MIN_WORDS:
            continue
        lo = int(rng.integers(0, max(1, len(words) - WINDOW + 1)))
        window = [w for j, w in enumerate(words[lo : lo + WINDOW]) if j % 4 != 3]
        window = [typo(w, rng) if rng.random() < TYPO_RATE else w for w in window]
        out.append(Query(f"bootstrap-{len(out)}", " ".join(window), {ids[i]: 3.0}))
        if len(out) == n:
            break
    return out


def typo(word: str, rng: np.random.Generator) -> str:
    """Two adjacent inner letters swapped (words under 4 characters unchanged)."""
    if len(word) < 4:
        return word
    j = int(rng.integers(1, len(word) - 2))
    return word[:j] + word[j + 1] + word[j] + word[j + 2 :]


def judged_queries(rows: list[dict]) -> list[Query]:
    """The judged queries of a judgments snapshot (pipeline/service/judgments.py rows)."""
    by_query: dict[str, Query] = {}
    for row in rows:
        text = (row.get("text") or "").strip()
        if not text:  # blanked by an erasure
            continue
        query = by_query.get(row["query_id"])
        if query is None:
            query = Query(row["query_id"], text, {}, tuple(row.get("filters") or ()))
            by_query[row["query_id"]] = query
        query.grades[row["id"]] = float(row["grade"])
    return [by_query[q] for q in sorted(by_query)]
