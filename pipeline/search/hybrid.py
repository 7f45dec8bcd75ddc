"""Fusing the vector and keyword rankings of a hybrid search.

Two fusion functions, chosen by `search.fusion`:

- `convex`: alpha * norm(cosine) + (1 - alpha) * norm(BM25) over the union of both
  candidate lists, each score normalised over that union. Both scores are exact for every
  candidate (a vector-only candidate still gets its BM25 score and the other way round),
  so no score is guessed. Bruch et al. 2023 ("An Analysis of Fusion Functions for Hybrid
  Retrieval") find it beats RRF once alpha is tuned on a little data; on t0-prompts it
  did too (benchmarks/RESULTS.md, "Hybrid quality").
- `rrf`: reciprocal rank fusion, sum of weight / (k + rank); needs no calibration, but
  throws away how far apart the scores are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

FUSIONS: tuple[str, ...] = ("convex", "rrf")
NORMALIZATIONS: tuple[str, ...] = ("minmax", "zscore", "max")


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[int, float]]:
    """Fuse rankings of item ids (best first); returns (id, score) best first, ties by id.

    `weights` (one per ranking, default all 1) scale each ranking's 1 / (k + rank).
    """
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            fused[int(item)] = fused.get(int(item), 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))


def normalize(scores: np.ndarray, how: str) -> np.ndarray:
    """Scores mapped to a comparable scale over the candidates.

    minmax: (s - min) / (max - min). zscore: (s - mean) / std. max: s / max, i.e. min-max
    with the theoretical minimum 0 (BM25 >= 0; cosine is rarely below 0 for text). A side
    that cannot tell the candidates apart (constant scores for minmax and zscore, all
    zero for max, e.g. no keyword matched) maps to 0 and leaves the ranking to the other.
    """
    s = np.asarray(scores, dtype=np.float64)
    if len(s) == 0:
        return s
    if how == "minmax":
        spread = s.max() - s.min()
        return (s - s.min()) / spread if spread > 0 else np.zeros_like(s)
    if how == "zscore":
        std = s.std()
        return (s - s.mean()) / std if std > 0 else np.zeros_like(s)
    if how == "max":
        top = s.max()
        return s / top if top > 0 else np.zeros_like(s)
    raise ValueError(f"normalization {how!r} is unknown; expected one of {NORMALIZATIONS}")


def convex_combination(
    items: np.ndarray,
    vector_scores: np.ndarray,
    keyword_scores: np.ndarray,
    alpha: float,
    how: str = "minmax",
) -> list[tuple[int, float]]:
    """alpha * norm(vector) + (1 - alpha) * norm(keyword) per item; best first, ties by id."""
    items = np.asarray(items, dtype=np.int64)
    if not len(items) == len(vector_scores) == len(keyword_scores):
        raise ValueError("items, vector_scores and keyword_scores differ in length")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha!r}: expected a weight from 0 to 1")
    fused = alpha * normalize(vector_scores, how) + (1.0 - alpha) * normalize(keyword_scores, how)
    order = np.lexsort((items, -fused))
    return [(int(items[i]), float(fused[i])) for i in order]


def fuse(
    vector_rows: np.ndarray,
    keyword_rows: np.ndarray,
    vector_scores: Callable[[np.ndarray], np.ndarray],
    keyword_scores: Callable[[np.ndarray], np.ndarray],
    fusion: str = "convex",
    alpha: float = 0.5,
    normalization: str = "minmax",
    rrf_k: int = 60,
) -> list[tuple[int, float]]:
    """The hybrid ranking of two candidate lists (rows best first), best first with scores.

    `vector_scores(rows)` / `keyword_scores(rows)` give the exact scores of any rows, so
    convex combination scores every candidate on both sides. For rrf, alpha weights the
    rankings 2 * alpha and 2 * (1 - alpha): alpha 0.5 is plain RRF.
    """
    if fusion == "rrf":
        weights = (2.0 * alpha, 2.0 * (1.0 - alpha))
        return reciprocal_rank_fusion([vector_rows, keyword_rows], rrf_k, weights)
    if fusion != "convex":
        raise ValueError(f"fusion {fusion!r} is unknown; expected one of {FUSIONS}")
    union = np.union1d(np.asarray(vector_rows, np.int64), np.asarray(keyword_rows, np.int64))
    return convex_combination(
        union, vector_scores(union), keyword_scores(union), alpha, normalization
    )


__all__ = [
    "FUSIONS",
    "NORMALIZATIONS",
    "convex_combination",
    "fuse",
    "normalize",
    "reciprocal_rank_fusion",
]
