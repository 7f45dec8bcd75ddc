"""Ranking metrics at a cutoff for one query, from the ranked ids and the graded ids.

Grades are 0-3 (pipeline/service/judgments.py); a record is relevant from
`relevant_grade` up. nDCG uses the exponential gain 2^grade - 1 (Järvelin & Kekäläinen;
TREC's and scikit-learn's default discount log2(rank + 1)), ideal order = the judged
grades sorted, so a query whose relevant records are all in the top k in the best order
scores 1. `context_recall` is the same question for a packed RAG context.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence


def relevant(grades: Mapping[str, float], relevant_grade: float = 1.0) -> set[str]:
    """The ids graded `relevant_grade` or more."""
    return {rid for rid, g in grades.items() if g >= relevant_grade}


def recall_at_k(ranked: Sequence[str], wanted: Collection[str], k: int) -> float:
    """Share of the relevant ids among the first k (0 for a query with none relevant)."""
    if not wanted:
        return 0.0
    return len(set(ranked[:k]) & set(wanted)) / len(wanted)


def mrr_at_k(ranked: Sequence[str], wanted: Collection[str], k: int) -> float:
    """1 / rank of the first relevant id in the first k; 0 when there is none."""
    for rank, rid in enumerate(ranked[:k], start=1):
        if rid in wanted:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], grades: Mapping[str, float], k: int) -> float:
    """Normalised discounted cumulative gain at k with gain 2^grade - 1."""

    def dcg(gains: Sequence[float]) -> float:
        return sum((2.0**g - 1.0) / math.log2(i + 2) for i, g in enumerate(gains[:k]))

    ideal = dcg(sorted(grades.values(), reverse=True))
    if ideal <= 0:
        return 0.0
    return dcg([grades.get(rid, 0.0) for rid in ranked[:k]]) / ideal


def context_recall(context_ids: Collection[str], wanted: Collection[str]) -> float:
    """How many of a query's relevant records made it into a packed RAG context (0-1).

    `recall_at_k` with the ids the RAG packer kept (its citations) in place of the ranked
    list; pipeline/rag/recall.py applies it to a built context for the retrieval stage.
    """
    if not wanted:
        return 0.0
    return len(set(context_ids) & set(wanted)) / len(wanted)
