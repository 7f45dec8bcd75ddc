"""Exact ground truth for the near-duplicate benchmark, and the synthetic 1M-record set.

Ground truth on real data: every pair with Jaccard >= t of word n-gram *strings* (ids from a
Python dict, so no hash is involved), found by prefix filtering. Order shingles rarest
first; if J(x, y) >= t then |x & y| >= ceil(t * |x|), so the first |x| - ceil(t * |x|) + 1
shingles of x and of y share one: candidates from an inverted index over those prefixes are
complete, and each is verified by its exact Jaccard.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numba as nb
import numpy as np

from pipeline.dedup.lsh import jaccard_pairs, sorted_unique
from pipeline.text.tokens import shingle_tokens


def exact_shingle_ids(texts: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of sorted shingle ids per text: word n-gram strings, or the whole text if short."""
    ids: dict[str, int] = {}
    lengths, parts = [], []
    for text in texts:
        tokens = shingle_tokens(text)  # the stage's words (str.split() for spaced scripts)
        if len(tokens) < ngram:
            grams = {"\x00" + " ".join(tokens)}  # whole-text shingle, its own domain
        else:
            grams = {" ".join(tokens[i : i + ngram]) for i in range(len(tokens) - ngram + 1)}
        row = sorted(ids.setdefault(g, len(ids)) for g in grams)
        parts.append(np.asarray(row, np.uint64))
        lengths.append(len(row))
    offsets = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.concatenate(parts), offsets


@nb.njit(cache=True)
def _group_pairs(group_start: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    total = 0
    for g in range(len(group_start) - 1):
        m = group_start[g + 1] - group_start[g]
        total += m * (m - 1) // 2
    left = np.empty(total, np.int64)
    right = np.empty(total, np.int64)
    k = 0
    for g in range(len(group_start) - 1):
        for i in range(group_start[g], group_start[g + 1]):
            for j in range(i + 1, group_start[g + 1]):
                left[k] = min(docs[i], docs[j])
                right[k] = max(docs[i], docs[j])
                k += 1
    return left, right


def exact_similar_pairs(
    values: np.ndarray, offsets: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (left < right) with exact Jaccard >= threshold, by prefix filtering."""
    n = len(offsets) - 1
    sizes = np.diff(offsets)
    doc_of = np.repeat(np.arange(n), sizes)
    frequency = np.bincount(values.astype(np.int64))
    # Global order: rarest shingle first (ties by id); position of each shingle in its doc.
    rank_of_id = np.empty(len(frequency), np.int64)
    rank_of_id[np.lexsort((np.arange(len(frequency)), frequency))] = np.arange(len(frequency))
    ranks = rank_of_id[values.astype(np.int64)]
    order = np.lexsort((ranks, doc_of))
    position = np.arange(len(values)) - offsets[doc_of]
    prefix = sizes - np.ceil(threshold * sizes - 1e-9).astype(np.int64) + 1
    in_prefix = position < prefix[doc_of]
    token, docs = ranks[order][in_prefix], doc_of[order][in_prefix]
    by_token = np.lexsort((docs, token))
    token, docs = token[by_token], docs[by_token]
    starts = np.flatnonzero(np.r_[True, token[1:] != token[:-1], True])
    left, right = _group_pairs(starts, docs)
    codes = sorted_unique(left * n + right)
    left, right = codes // n, codes % n
    small, large = np.minimum(sizes[left], sizes[right]), np.maximum(sizes[left], sizes[right])
    fits = small >= threshold * large - 1e-9  # size filter: J <= small / large
    left, right = left[fits], right[fits]
    sims = jaccard_pairs(values, offsets, left, right)
    keep = sims >= threshold
    return left[keep], right[keep], sims[keep]


def planted_set(
    sources: Sequence[str], n_records: int, seed: int, variant_share: float = 0.3
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """`n_records` texts spliced from t0 windows, with variants planted at target Jaccards.

    Returns (texts, family, base_of, target): every text's family id (its base's index),
    and for each variant its base and the 5-gram Jaccard it was built to have (0 for bases).
    Replacing k words 5 apart removes 5k shingles from each side: J = (L-4-5k)/(L-4+5k).
    """
    rng = random.Random(seed)
    draws = np.random.default_rng(seed)
    split = [s.split() for s in sources]
    stream = [w for words in split for w in words]  # all t0 words, in order
    lengths = np.array([len(words) for words in split])
    del split
    lengths = np.clip(lengths[lengths >= 20], 20, 400)
    n_variants = int(n_records * variant_share)
    n_bases = n_records - n_variants
    targets = (0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)
    bases: list[list[str]] = []
    wants = draws.choice(lengths, n_bases)
    # Pre-drawn windows: 8-40 words each, from random points of the word stream.
    n_windows = int(wants.sum() // 8) + 1
    starts = draws.integers(0, len(stream) - 40, n_windows).tolist()
    ends = (np.asarray(starts) + draws.integers(8, 41, n_windows)).tolist()
    w = 0
    for want in wants.tolist():
        words: list[str] = []
        while len(words) < want:
            words.extend(stream[starts[w] : ends[w]])
            w += 1
        bases.append(words[:want])
    texts = [" ".join(w) for w in bases]
    family = list(range(n_bases))
    base_of = [-1] * n_bases
    target = [0.0] * n_bases
    for v in range(n_variants):
        b = rng.randrange(n_bases)
        words = list(bases[b])
        goal = targets[v % len(targets)]
        k = round((len(words) - 4) * (1 - goal) / (5 * (1 + goal)))
        slots = range(0, len(words), 5)
        for pos in rng.sample(slots, min(k, len(slots))):
            words[pos] = f"zq{v}x{pos}"  # never in the corpus
        texts.append(" ".join(words))
        family.append(b)
        base_of.append(b)
        target.append(goal)
    # Shuffle so duplicates are not next to their bases (LSH must not rely on order).
    perm = list(range(n_records))
    rng.shuffle(perm)
    inverse = np.empty(n_records, np.int64)
    inverse[perm] = np.arange(n_records)
    fam = np.asarray(family)[perm]
    return (
        [texts[i] for i in perm],
        inverse[fam],  # family id = shuffled index of the base
        np.where(np.asarray(base_of)[perm] >= 0, inverse[np.asarray(base_of)[perm]], -1),
        np.asarray(target)[perm],
    )


# ---- scoring ------------------------------------------------------------------------------


def pair_codes(left: np.ndarray, right: np.ndarray, n: int) -> np.ndarray:
    left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
    return sorted_unique(np.minimum(left, right) * n + np.maximum(left, right))


def record_scores(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(recall, precision) of flagged records against records with a true partner."""
    hits = np.count_nonzero(flagged & truth)
    return hits / max(np.count_nonzero(truth), 1), hits / max(np.count_nonzero(flagged), 1)


def cluster_roots(n: int, result: list[tuple[int, int, float]]) -> np.ndarray:
    """Survivor of every record's cluster (itself when not clustered) from near_duplicates."""
    root = np.arange(n)
    for removed, survivor, _ in result:
        root[removed] = survivor
    return root


def clustered(root: np.ndarray) -> np.ndarray:
    """Records in a cluster of two or more."""
    flagged = root != np.arange(len(root))
    flagged[root[flagged]] = True
    return flagged


def flagged_of_pairs(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    flagged = np.zeros(n, bool)
    flagged[np.asarray(left, np.int64)] = True
    flagged[np.asarray(right, np.int64)] = True
    return flagged


def union_find_roots(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Lowest index of each record's connected component under the pairs."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
    graph = coo_matrix((np.ones(len(left), np.int8), (left, right)), shape=(n, n))
    labels = connected_components(graph, directed=False)[1]
    lowest = np.full(labels.max() + 1, n, np.int64)
    np.minimum.at(lowest, labels, np.arange(n))
    return lowest[labels]


@dataclass
class Truth:
    """Exact shingle sets of a corpus and every pair at Jaccard >= threshold."""

    values: np.ndarray
    offsets: np.ndarray
    left: np.ndarray
    right: np.ndarray
    threshold: float

    @classmethod
    def exact(cls, texts: Sequence[str], ngram: int = 5, threshold: float = 0.8) -> Truth:
        values, offsets = exact_shingle_ids(texts, ngram)
        left, right, _ = exact_similar_pairs(values, offsets, threshold)
        return cls(values, offsets, left, right, threshold)

    @classmethod
    def hashed(cls, values: np.ndarray, offsets: np.ndarray, threshold: float = 0.8) -> Truth:
        left, right = hashed_similar_pairs(values, offsets, threshold)
        return cls(values, offsets, left, right, threshold)

    @property
    def n(self) -> int:
        return len(self.offsets) - 1

    @property
    def records(self) -> np.ndarray:
        return flagged_of_pairs(self.n, self.left, self.right)

    def jaccard(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
        return jaccard_pairs(self.values, self.offsets, left, right)

    def _share(self, left: np.ndarray, right: np.ndarray) -> float:
        return float(np.mean(self.jaccard(left, right) >= self.threshold)) if len(left) else 1.0

    def _cluster_scores(self, root: np.ndarray) -> list[str]:
        recall = float(np.mean(root[self.left] == root[self.right])) if len(self.left) else 1.0
        removed = np.flatnonzero(root != np.arange(self.n))
        rec, prec = record_scores(clustered(root), self.records)
        return [f"{recall:.4f}", f"{self._share(removed, root[removed]):.4f}", f"{rec:.4f}",
                f"{prec:.4f}"]  # fmt: skip

    def score_pairs(self, left: np.ndarray, right: np.ndarray) -> list[str]:
        """Scores of reported pairs, clustered by union-find (lowest index survives)."""
        codes = pair_codes(left, right, self.n)
        left, right = codes // self.n, codes % self.n
        recall, removed_ok, rec, prec = self._cluster_scores(union_find_roots(self.n, left, right))
        return [recall, f"{self._share(left, right):.4f}", removed_ok, rec, prec]

    def score_result(
        self, result: list[tuple[int, int, float]], pairs: tuple[np.ndarray, np.ndarray] | None
    ) -> list[str]:
        """Scores of near_duplicates' output and its verified pairs."""
        recall, removed_ok, rec, prec = self._cluster_scores(cluster_roots(self.n, result))
        pair_precision = "-" if pairs is None else f"{self._share(*pairs):.4f}"
        return [recall, pair_precision, removed_ok, rec, prec]

    def score_records(self, flags: np.ndarray) -> list[str]:
        rec, prec = record_scores(np.asarray(flags, bool), self.records)
        return [f"{rec:.4f}", f"{prec:.4f}"]


@nb.njit(cache=True, parallel=True)
def _prefix_entries(
    values: np.ndarray, offsets: np.ndarray, counts: np.ndarray, mask: np.uint64, t: float
) -> tuple[np.ndarray, np.ndarray]:
    n = len(offsets) - 1
    plen = np.empty(n, np.int64)
    for d in range(n):
        size = offsets[d + 1] - offsets[d]
        plen[d] = size - int(np.ceil(t * size - 1e-9)) + 1
    start = np.zeros(n + 1, np.int64)
    for d in range(n):
        start[d + 1] = start[d] + plen[d]
    shingle = np.empty(start[-1], np.uint64)
    doc = np.empty(start[-1], np.int64)
    for d in nb.prange(n):
        row = values[offsets[d] : offsets[d + 1]]  # ascending hash
        freq = np.empty(len(row), np.int64)
        for i in range(len(row)):
            freq[i] = counts[np.int64(row[i] & mask)]
        # Stable sort by frequency over ascending hashes: global order (frequency, hash).
        order = np.argsort(freq, kind="mergesort")
        for k in range(plen[d]):
            shingle[start[d] + k] = row[order[k]]
            doc[start[d] + k] = d
    return shingle, doc


def hashed_similar_pairs(
    values: np.ndarray, offsets: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Prefix filtering over 64-bit shingle hashes (too many records for string ids).

    Order: (approximate document frequency, hash), a function of the hash alone, so it is a
    valid global order and the candidates stay complete; frequency first keeps them few."""
    mask = np.uint64((1 << 26) - 1)
    counts = np.bincount((values & mask).astype(np.int64), minlength=1 << 26)
    shingle, doc = _prefix_entries(values, offsets, counts, mask, threshold)
    del counts
    order = np.argsort(shingle, kind="stable")
    shingle, doc = shingle[order], doc[order]
    starts = np.flatnonzero(np.r_[True, shingle[1:] != shingle[:-1], True])
    left, right = _group_pairs(starts, doc)
    n = len(offsets) - 1
    codes = sorted_unique(left * n + right)
    left, right = codes // n, codes % n
    sizes = np.diff(offsets)
    small, large = np.minimum(sizes[left], sizes[right]), np.maximum(sizes[left], sizes[right])
    fits = small >= threshold * large - 1e-9
    left, right = left[fits], right[fits]
    keep = jaccard_pairs(values, offsets, left, right) >= threshold
    return left[keep], right[keep]
