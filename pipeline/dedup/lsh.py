"""MinHash signatures, LSH band keys, candidate pairs by sorting, and exact Jaccard of pairs.

Everything works on the CSR shingle sets of `pipeline.dedup.shingles`: compiled loops for the
per-document work, NumPy sorts for the cross-document work (no Python dict of buckets).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from pipeline.dedup.shingles import mix64, sort_unique_run

_S32 = np.uint64(32)
_BAND_DOMAIN = np.uint64(0x62616E6400000003)


def permutation_params(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded multiply-add-shift hash parameters: odd multipliers `a` and offsets `b`."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
    return a, b


@nb.njit(cache=True, parallel=True)
def signatures(values: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signatures (n_docs, num_perm) uint32: min over shingles of (a*x + b) >> 32."""
    n_docs = len(offsets) - 1
    num_perm = len(a)
    sig = np.empty((n_docs, num_perm), np.uint32)
    for d in nb.prange(n_docs):
        mins = np.full(num_perm, np.uint64(0xFFFFFFFF))
        for i in range(offsets[d], offsets[d + 1]):
            x = values[i]
            for p in range(num_perm):
                mins[p] = min(mins[p], (a[p] * x + b[p]) >> _S32)
        for p in range(num_perm):
            sig[d, p] = mins[p]
    return sig


@nb.njit(cache=True, parallel=True)
def band_keys(sig: np.ndarray, bands: int) -> np.ndarray:
    """One 64-bit key per (document, band): a hash of the band's rows of the signature."""
    n_docs = sig.shape[0]
    rows = sig.shape[1] // bands
    keys = np.empty((n_docs, bands), np.uint64)
    for d in nb.prange(n_docs):
        for j in range(bands):
            h = mix64(_BAND_DOMAIN ^ np.uint64(j))
            for r in range(rows):
                h = mix64(h ^ np.uint64(sig[d, j * rows + r]))
            keys[d, j] = h
    return keys


def candidate_pairs(
    keys: np.ndarray, window: int = 32, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct pairs (left < right) sharing a band key, from one sort per band.

    Within a bucket each document is paired with the next `window` members (by index), so a
    bucket of up to window + 1 documents yields all its pairs and a huge bucket (thousands of
    copies of one text) stays linear while remaining connected for the union-find.
    `rows` restricts the documents to those rows of `keys` (which may be a disk-backed
    memmap: one band is read at a time); pairs are then positions in `rows`.
    """
    n_docs = keys.shape[0] if rows is None else len(rows)
    n_bands = keys.shape[1]
    codes = []
    for j in range(n_bands):
        column = np.asarray(keys[:, j])
        if rows is not None:
            column = column[rows]
        order = np.argsort(column, kind="stable").astype(np.int64)
        sorted_keys = column[order]
        for step in range(1, window + 1):
            same = sorted_keys[step:] == sorted_keys[:-step]
            if not same.any():
                break
            left = order[:-step][same]
            right = order[step:][same]
            codes.append(np.minimum(left, right) * n_docs + np.maximum(left, right))
    if not codes:
        empty = np.zeros(0, np.int64)
        return empty, empty
    unique = sorted_unique(np.concatenate(codes))
    return unique // n_docs, unique % n_docs


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by one sort: NumPy 2.4's np.unique is ~100x slower on millions of int64."""
    ordered = np.sort(values)
    keep = np.ones(len(ordered), bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]


@nb.njit(inline="always")
def _jaccard(values: np.ndarray, i0: int, i1: int, j0: int, j1: int, threshold: float) -> float:
    """Jaccard of two sorted unique runs if it is >= threshold, else 0.0 (0 threshold: exact).

    J >= t needs |A & B| >= t (|A| + |B|) / (1 + t): runs whose sizes differ too much are
    skipped, and the merge stops once the values left cannot reach that intersection.
    """
    total = (i1 - i0) + (j1 - j0)
    need = threshold * total / (1.0 + threshold) - 1e-9
    if min(i1 - i0, j1 - j0) < need:
        return 0.0
    shared = 0
    while i0 < i1 and j0 < j1:
        if shared + min(i1 - i0, j1 - j0) < need:
            return 0.0
        x, y = values[i0], values[j0]
        if x == y:
            shared += 1
            i0 += 1
            j0 += 1
        elif x < y:
            i0 += 1
        else:
            j0 += 1
    if shared < need:
        return 0.0
    return shared / (total - shared) if total > shared else 1.0


@nb.njit(cache=True, parallel=True)
def jaccard_pairs(
    values: np.ndarray, offsets: np.ndarray, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Exact Jaccard of each pair of rows of a CSR of sorted unique shingle hashes."""
    out = np.empty(len(left), np.float64)
    for k in nb.prange(len(left)):
        i, j = left[k], right[k]
        out[k] = _jaccard(values, offsets[i], offsets[i + 1], offsets[j], offsets[j + 1], 0.0)
    return out


@nb.njit(cache=True, parallel=True)
def verify_pairs(
    values: np.ndarray, offsets: np.ndarray, left: np.ndarray, right: np.ndarray, threshold: float
) -> np.ndarray:
    """Exact Jaccard of each pair if it is >= threshold, else 0.0 (decided early if possible)."""
    out = np.empty(len(left), np.float64)
    for k in nb.prange(len(left)):
        i, j = left[k], right[k]
        out[k] = _jaccard(values, offsets[i], offsets[i + 1], offsets[j], offsets[j + 1], threshold)
    return out


@nb.njit(cache=True, parallel=True)
def sort_unique_rows(values: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Sort the listed CSR rows in place, unique values first; returns every row's end."""
    ends = offsets[1:].copy()
    for k in nb.prange(len(rows)):
        o = offsets[rows[k]]
        ends[rows[k]] = o + sort_unique_run(values, o, offsets[rows[k] + 1] - o)
    return ends


@nb.njit(cache=True, parallel=True)
def jaccard_rows(
    values: np.ndarray, starts: np.ndarray, ends: np.ndarray, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Exact Jaccard of row pairs given as [start, end) runs of sorted unique values."""
    out = np.empty(len(left), np.float64)
    for k in nb.prange(len(left)):
        i, j = left[k], right[k]
        out[k] = _jaccard(values, starts[i], ends[i], starts[j], ends[j], 0.0)
    return out


@nb.njit(inline="always")
def _find(parent: np.ndarray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        parent[x], x = root, parent[x]
    return root


@nb.njit(cache=True)
def union_verified(
    values: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    threshold: float,
) -> np.ndarray:
    """Union-find over the candidate pairs whose true Jaccard is >= threshold.

    Returns each row's root, the lowest row of its cluster. A pair whose rows already share
    a cluster is not verified: its result could not change the clusters, and in big clusters
    that skips most of the work.
    """
    parent = np.arange(len(starts))
    for k in range(len(left)):
        i, j = left[k], right[k]
        ri, rj = _find(parent, i), _find(parent, j)
        if ri == rj:
            continue
        if _jaccard(values, starts[i], ends[i], starts[j], ends[j], threshold) > 0.0:
            if ri < rj:
                parent[rj] = ri
            else:
                parent[ri] = rj
    for x in range(len(parent)):
        parent[x] = _find(parent, x)
    return parent
