"""Ranking one query in one index snapshot: vector, keyword (BM25) or both fused."""

from __future__ import annotations

import numpy as np

from pipeline.search.hybrid import fuse
from pipeline.search.settings import SearchSettings
from pipeline.search.state import IndexState

Scores = list[tuple[float, float | None, float | None]]


def rank(
    state: IndexState,
    s: SearchSettings,
    text: str,
    query: np.ndarray | None,
    k: int,
    mode: str,
    rows: np.ndarray | None,
) -> tuple[np.ndarray, Scores]:
    """The k best rows (among `rows` when given) and their (ranking, vector, keyword) scores."""
    depth = k if mode != "hybrid" else max(k, s.candidates)
    vec_rows = kw_rows = np.zeros(0, np.int64)
    kw_all = None  # BM25 of every row: computed once, read for candidates and hits
    if mode != "keyword":
        vec_rows, _, _ = state.vector_top(query, depth, rows, s.exact_below, s.filtered_ef_max)
    if mode != "vector":
        kw_all = state.bm25.scores(text)
        kw_rows, _ = state.keyword_top(text, depth, rows, scores=kw_all)
    if mode == "hybrid":
        fused = fuse(
            vec_rows,
            kw_rows,
            lambda rows: state.vector_scores(query, rows),
            lambda rows: kw_all[rows],
            s.fusion,
            s.alpha,
            s.normalization,
            s.rrf_k,
        )[:k]
    else:
        ranked = vec_rows if mode == "vector" else kw_rows
        fused = [(int(r), 0.0) for r in ranked[:k]]
    hit_rows = np.asarray([r for r, _ in fused], dtype=np.int64)
    vec_scores = state.vector_scores(query, hit_rows) if query is not None else None
    kw_scores = kw_all[hit_rows] if kw_all is not None else None
    return hit_rows, _scores(fused, vec_scores, kw_scores, mode)


def _scores(
    fused: list[tuple[int, float]],
    vec_scores: np.ndarray | None,
    kw_scores: np.ndarray | None,
    mode: str,
) -> Scores:
    """(ranking score, vector, keyword) of each hit in rank order."""
    out = []
    for i, (_, fused_score) in enumerate(fused):
        v = float(vec_scores[i]) if vec_scores is not None else None
        kw = float(kw_scores[i]) if kw_scores is not None else None
        out.append((fused_score if mode == "hybrid" else (v if mode == "vector" else kw), v, kw))
    return out
