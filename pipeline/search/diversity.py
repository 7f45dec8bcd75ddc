"""Diversifying a ranking: one slot per conversation, or maximal marginal relevance.

Chosen by `search.diversity` (or per search): `none` keeps the ranking as it is;
`session` keeps the best hit of each session and drops its other turns, as Qdrant's
group-by with a group size of one (a record without a session is its own group); `mmr`
picks, greedily, the candidate maximising lambda * relevance - (1 - lambda) * (its highest
cosine to a hit already picked), relevance being the ranking's score min-max scaled over
the candidates (Carbonell & Goldstein 1998). Both re-rank the `search.candidates` best of
the ranking, so a diversified search costs one deeper ranking, not a second search.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.errors import UserInputError

DIVERSITIES: tuple[str, ...] = ("none", "session", "mmr")
Sessions = Callable[[np.ndarray], Mapping[int, str | None]]


def checked_diversity(how: str | None, default: str) -> str:
    """`how`, or `default` when None; UserInputError for a name not in DIVERSITIES."""
    how = default if how is None else how
    if how not in DIVERSITIES:
        raise UserInputError(
            f"diversity {how!r} is unknown; expected one of {', '.join(DIVERSITIES)}"
        )
    return how


def diversified_rank(
    state: Any,
    settings: Any,
    text: str,
    query: np.ndarray | None,
    k: int,
    mode: str,
    rows: np.ndarray | None,
    how: str,
    sessions: Sessions,
) -> tuple[np.ndarray, list[tuple[float, float | None, float | None]]]:
    """The ranking's `settings.candidates` best (pipeline/search/rank.py), re-ranked by `how`:
    the rows kept and their scores, as `rank` returns them."""
    from pipeline.search.rank import rank

    cand, scores = rank(state, settings, text, query, max(k, settings.candidates), mode, rows)
    keep = diversify(
        how, state.rids[cand], np.asarray([sc[0] for sc in scores], np.float64),
        lambda: np.asarray(state.vectors[cand], np.float32), sessions, k, settings.mmr_lambda,
    )  # fmt: skip
    return cand[keep], [scores[i] for i in keep]


def one_per_session(sessions: Sequence[str | None], k: int) -> list[int]:
    """Positions of the first (best) candidate of each session, at most k, in rank order."""
    seen: set[str] = set()
    keep = []
    for i, session in enumerate(sessions):
        if session is not None:
            if session in seen:
                continue
            seen.add(session)
        keep.append(i)
        if len(keep) == k:
            break
    return keep


def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, lam: float) -> list[int]:
    """Positions picked by maximal marginal relevance (unit vectors: dot = cosine)."""
    n = len(relevance)
    if n == 0:
        return []
    rel = np.asarray(relevance, np.float64)
    spread = rel.max() - rel.min()
    rel = (rel - rel.min()) / spread if spread > 0 else np.ones(n)
    vecs = np.asarray(vectors, np.float32)
    closest = np.full(n, -np.inf)  # highest cosine to a picked hit; none picked yet
    picked: list[int] = []
    free = np.ones(n, bool)
    for _ in range(min(k, n)):
        penalty = np.where(np.isinf(closest), 0.0, closest)
        gain = np.where(free, lam * rel - (1.0 - lam) * penalty, -np.inf)
        best = int(np.argmax(gain))  # ties: the better-ranked candidate (argmax is first)
        picked.append(best)
        free[best] = False
        closest = np.maximum(closest, vecs @ vecs[best])
    return picked


def diversify(
    how: str,
    rids: np.ndarray,
    relevance: np.ndarray,
    vectors: Callable[[], np.ndarray],
    sessions: Sessions,
    k: int,
    lam: float,
) -> list[int]:
    """Positions of the candidates (`rids` best first) a diversified top k keeps."""
    if how == "none":
        return list(range(min(k, len(rids))))
    if how == "session":
        found = sessions(rids)
        return one_per_session([found.get(int(r)) for r in rids], k)
    if how == "mmr":
        return mmr(relevance, vectors(), k, lam)
    raise ValueError(f"diversity {how!r} is unknown; expected one of {DIVERSITIES}")
