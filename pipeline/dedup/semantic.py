"""Semantic duplicates: pairs of records whose embeddings are within a cosine threshold.

Pure core, no I/O: `similar_pairs` finds every pair at or above the threshold with FAISS
(an exact inner-product range search, or SemDeDup's k-means clusters searched exactly when
the input is large), `Guards` rejects pairs a vector cannot tell apart but a reader can (a
changed number, an added negation, another label, a text the encoder truncated), and
`clusters` joins what remains into connected components whose best-ranked member survives,
as the exact and near steps do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# Numbers as written: "3", "3.5", "1,000". Two texts that differ in one ask different things
# ("2 tickets" / "3 tickets") though their MiniLM vectors sit at a cosine of ~0.97.
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Negators, and contractions ("doesn't", "can't"); "cannot" counts as one.
_NEGATORS = frozenset(
    ("not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "without",
     "cannot")
)  # fmt: skip
_WORD = re.compile(r"[a-z']+")


@dataclass(frozen=True)
class Pairs:
    """Candidate pairs (i < j, positions in the vectors given) and their cosine."""

    left: np.ndarray  # int64
    right: np.ndarray  # int64
    cosine: np.ndarray  # float32

    def __len__(self) -> int:
        return len(self.left)

    def where(self, keep: np.ndarray) -> Pairs:
        """The pairs where `keep` is true."""
        return Pairs(self.left[keep], self.right[keep], self.cosine[keep])


def similar_pairs(
    vectors: np.ndarray,
    threshold: float,
    exact_below: int = 20_000,
    clusters_per_record: float = 1 / 500,
    probe: int = 4,
    seed: int = 1,
) -> Pairs:
    """Every pair of L2-normalised `vectors` with a cosine of at least `threshold`.

    Below `exact_below` vectors an exact range search over all of them (n^2 d flops: ~1 s at
    20k x 384 on 2 cores); above it, an IVF index: k-means into n x `clusters_per_record`
    clusters, each vector searched exactly in its `probe` nearest clusters, so a pair split
    by a cluster boundary is still found unless both sides fall in different probed sets
    (benchmarks/semantic.py measures the recall against the exact search)."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    if n < 2:
        return _empty()
    if n < exact_below:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = max(2, int(n * clusters_per_record))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed  # k-means is seeded: the same input gives the same pairs
        index.train(x)
        index.nprobe = min(probe, nlist)
    index.add(x)
    lims, scores, ids = index.range_search(x, float(threshold))
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(lims.astype(np.int64)))
    ids = ids.astype(np.int64)
    upper = rows < ids  # each pair once, never a vector with itself
    left, right, cosine = rows[upper], ids[upper], scores[upper].astype(np.float32)
    order = np.lexsort((right, left))
    return Pairs(left[order], right[order], cosine[order])


def _empty() -> Pairs:
    none = np.zeros(0, np.int64)
    return Pairs(none, none, np.zeros(0, np.float32))


def numbers_of(text: str) -> tuple[str, ...]:
    """The numbers in `text`, sorted (a multiset): two texts must agree on them."""
    return tuple(sorted(_NUMBER.findall(text)))


def negations_of(text: str) -> int:
    """How many negators `text` has ("does not" and "doesn't" count alike)."""
    words = _WORD.findall(text.lower())
    return sum(1 for w in words if w in _NEGATORS or w.endswith("n't"))


@dataclass(frozen=True)
class Guards:
    """What a pair's texts must share besides a close vector. Each test is an equality, so
    it holds across a whole connected component, not only along its edges."""

    same_label: bool = True  # a pair of two labels is a label question, not a duplicate
    same_numbers: bool = True
    same_negations: bool = True
    whole_texts: bool = True  # the encoder saw both texts whole (not truncated)


@dataclass
class GuardCounts:
    """Pairs over the threshold that a guard kept apart (the first guard that failed)."""

    label: int = 0
    numbers: int = 0
    negations: int = 0
    truncated: int = 0
    by_label_pair: dict[str, int] = field(default_factory=dict)  # cross-label pairs

    def as_dict(self) -> dict[str, int]:
        return {"label": self.label, "numbers": self.numbers, "negations": self.negations,
                "truncated": self.truncated}  # fmt: skip


def apply_guards(
    pairs: Pairs,
    texts: dict[int, str],
    labels: Sequence[str | None],
    truncated: dict[int, bool],
    guards: Guards,
) -> tuple[Pairs, GuardCounts]:
    """The pairs every enabled guard lets through, and how many each guard held back (by
    the first that failed). `texts` and `truncated` cover every position in `pairs`."""
    counts = GuardCounts()
    keep = np.ones(len(pairs), bool)
    numbers = {i: numbers_of(t) for i, t in texts.items()} if guards.same_numbers else {}
    negations = {i: negations_of(t) for i, t in texts.items()} if guards.same_negations else {}
    for k, (i, j) in enumerate(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True)):
        if guards.same_label and labels[i] != labels[j]:
            counts.label += 1
            key = " | ".join(sorted((str(labels[i]), str(labels[j]))))
            counts.by_label_pair[key] = counts.by_label_pair.get(key, 0) + 1
        elif guards.whole_texts and (truncated[i] or truncated[j]):
            counts.truncated += 1
        elif guards.same_numbers and numbers[i] != numbers[j]:
            counts.numbers += 1
        elif guards.same_negations and negations[i] != negations[j]:
            counts.negations += 1
        else:
            continue
        keep[k] = False
    return pairs.where(keep), counts


def clusters(
    n: int, pairs: Pairs, rank: np.ndarray, vectors: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(removed, survivor, cosine to the survivor), sorted by removed: connected components
    of the pairs, the lowest-`rank` member of each survives (dedup.keep_policy)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from pipeline.dedup.clusters import cluster_survivors

    if not len(pairs):
        none = np.zeros(0, np.int64)
        return none, none, np.zeros(0)
    graph = coo_matrix((np.ones(len(pairs)), (pairs.left, pairs.right)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    removed, survivor = cluster_survivors(component.astype(np.int64), np.asarray(rank))
    # A chain a~b~c joins a and c: report c's own cosine to the survivor, as the near step.
    cosine = np.einsum("ij,ij->i", vectors[removed], vectors[survivor]).astype(np.float64)
    return removed.astype(np.int64), survivor, np.clip(cosine, -1.0, 1.0)
