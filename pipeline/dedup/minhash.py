"""Near-duplicate detection: MinHash + LSH banding, verified by true Jaccard, clustered.

`near_duplicates` reads as the algorithm:

1. shingle each text and compute its MinHash signature and LSH band keys, in batches
   (signatures are dropped per batch; large inputs drop their shingles too);
2. candidate pairs = documents sharing a band key (one sort per band);
3. verify candidate pairs by the true Jaccard of their sorted shingle sets (sorted, or
   recomputed for large inputs, for candidate documents only), keep pairs >= threshold;
4. clusters = union-find over the verified pairs (a pair already inside one cluster is
   not verified: it could not change the clusters);
5. survivor of each cluster = lowest priority, ties to the lowest index; every other member
   is reported with its true Jaccard to the survivor.

The compiled kernels live in `shingles.py` and `lsh.py`; numba is imported only when
`near_duplicates` runs, so importing the settings stays cheap.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pipeline.dedup.near_settings import NearDupSettings

# Documents per pass-1 batch: large enough to amortise kernel calls, small enough that a
# batch's shingles and signatures (~ 200 shingles x 8 B + 128 x 4 B per text) stay ~50 MB.
CHUNK = 25_000
# Inputs up to this many characters keep their shingle sets from pass 1 for verification
# (~1.4 MB per million characters; t0-prompts has 59M characters). Larger inputs recompute
# the sets of candidate documents only, trading some time for memory.
KEEP_CHARS = 150_000_000

# Documents fetched per call when texts come from disk: bounds the texts held at once.
FETCH_CHUNK = 4_096

Fetch = Callable[[np.ndarray], Sequence[str]]  # texts of the given document indices

__all__ = ["NearDupSettings", "band_keys_of", "near_duplicates", "near_duplicates_keyed"]


@contextmanager
def _threads(workers: int) -> Iterator[None]:
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(workers, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _batches(n: int, progress: bool, desc: str, chunk: int = CHUNK) -> Iterator[tuple[int, int]]:
    starts = range(0, n, chunk)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=desc, unit="batch", file=sys.stderr, leave=False)
    for start in starts:
        yield start, min(start + chunk, n)


def _concat_csr(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = [np.diff(offsets) for _, offsets in parts]
    offsets = np.zeros(sum(len(x) for x in lengths) + 1, np.int64)
    if not parts:
        return np.zeros(0, np.uint64), offsets
    np.cumsum(np.concatenate(lengths), out=offsets[1:])
    return np.concatenate([values for values, _ in parts]), offsets


def _minhash_batch(
    texts: Sequence[str], settings: NearDupSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band keys (len(texts), bands) of one batch, and its unsorted shingle CSR."""
    from pipeline.dedup.lsh import band_keys, permutation_params, signatures
    from pipeline.dedup.shingles import shingle_sets

    a, b = permutation_params(settings.num_perm, settings.seed)
    values, offsets = shingle_sets(
        texts, settings.shingle, settings.ngram, settings.seed, unique=False
    )
    return band_keys(signatures(values, offsets, a, b), settings.bands), values, offsets


def band_keys_of(texts: Sequence[str], settings: NearDupSettings) -> np.ndarray:
    """LSH band keys (len(texts), bands) uint64 of one batch of texts."""
    with _threads(settings.workers):
        return _minhash_batch(texts, settings)[0]


def lsh_band_keys(
    texts: Sequence[str], settings: NearDupSettings, progress: bool = False
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Band keys (n, bands) uint64 of every text, and its shingle CSR when the input is small.

    Shingles are hashed unsorted, with repeats: MinHash needs no order. Small inputs
    (KEEP_CHARS) keep them, and verification sorts the rows of candidate documents in place;
    large inputs drop them, and verification recomputes candidate documents only.
    """
    keys = np.empty((len(texts), settings.bands), np.uint64)
    keep = sum(len(t) for t in texts) <= KEEP_CHARS
    kept: list[tuple[np.ndarray, np.ndarray]] = []
    for start, stop in _batches(len(texts), progress, "near-dup: minhash"):
        keys[start:stop], values, offsets = _minhash_batch(texts[start:stop], settings)
        if keep:
            kept.append((values, offsets))
    return keys, (_concat_csr(kept) if keep else None)


def _subset_shingles(
    fetch: Fetch,
    docs: np.ndarray,
    settings: NearDupSettings,
    progress: bool,
    scratch: Path | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted CSR shingle sets of the texts `fetch(docs)` (row k is document docs[k]).

    With `scratch`, the values go to a file there and come back memory-mapped, so the
    shingles of a huge candidate set live in the page cache, not in this process's heap.
    """
    from pipeline.dedup.shingles import shingle_sets

    if scratch is None:
        parts = []
        for start, stop in _batches(len(docs), progress, "near-dup: verify"):
            texts = fetch(docs[start:stop])
            parts.append(shingle_sets(texts, settings.shingle, settings.ngram, settings.seed))
        return _concat_csr(parts)
    path = scratch / "shingles.u64"
    lengths = []
    with path.open("wb") as fh:
        for start, stop in _batches(len(docs), progress, "near-dup: verify", FETCH_CHUNK):
            texts = fetch(docs[start:stop])
            values, offsets = shingle_sets(texts, settings.shingle, settings.ngram, settings.seed)
            fh.write(values.tobytes())
            lengths.append(np.diff(offsets))
    offsets = np.zeros(sum(len(x) for x in lengths) + 1, np.int64)
    if lengths:
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
    if offsets[-1] == 0:
        return np.zeros(0, np.uint64), offsets
    return np.memmap(path, dtype=np.uint64, mode="r", shape=(int(offsets[-1]),)), offsets


def _candidate_rows(
    texts: Sequence[str], settings: NearDupSettings, progress: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1-2, and the sorted shingle sets of candidate documents as [start, end) rows.

    Returns (docs, values, starts, ends, row_left, row_right): row r holds document docs[r];
    candidate pairs are given as rows.
    """
    from pipeline.dedup.lsh import candidate_pairs, sort_unique_rows

    keys, kept = lsh_band_keys(texts, settings, progress)
    if kept is None:
        return _keyed_rows(keys, lambda idx: [texts[i] for i in idx], settings, progress)
    left, right = candidate_pairs(keys)
    del keys
    values, offsets = kept
    ends = sort_unique_rows(values, offsets, _candidates(left, right))
    return np.arange(len(texts)), values, offsets[:-1], ends, left, right


def _candidates(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    from pipeline.dedup.lsh import sorted_unique

    return sorted_unique(np.concatenate([left, right]))


def _keyed_rows(
    keys: np.ndarray,
    fetch: Fetch,
    settings: NearDupSettings,
    progress: bool,
    rows: np.ndarray | None = None,
    scratch: Path | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`_candidate_rows` from band keys: shingles are computed for candidate documents only."""
    from pipeline.dedup.lsh import candidate_pairs

    left, right = candidate_pairs(keys, rows=rows)
    docs = _candidates(left, right)
    fetch_docs = fetch if rows is None else (lambda idx: fetch(rows[idx]))
    values, offsets = _subset_shingles(fetch_docs, docs, settings, progress, scratch)
    starts, ends = offsets[:-1], offsets[1:]
    return docs, values, starts, ends, np.searchsorted(docs, left), np.searchsorted(docs, right)


def similar_pairs(
    texts: Sequence[str], settings: NearDupSettings, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every verified near-duplicate pair (left < right, true Jaccard >= threshold), sorted.

    For measurement: `near_duplicates` verifies only the pairs that can still join clusters.
    """
    empty = np.zeros(0, np.int64)
    if len(texts) < 2:
        return empty, empty, np.zeros(0)
    from pipeline.dedup.lsh import jaccard_rows

    with _threads(settings.workers):
        docs, values, starts, ends, rows_l, rows_r = _candidate_rows(texts, settings, progress)
        sims = jaccard_rows(values, starts, ends, rows_l, rows_r)
    keep = sims >= settings.threshold
    return docs[rows_l[keep]], docs[rows_r[keep]], sims[keep]


def near_duplicates(
    texts: Sequence[str],
    settings: NearDupSettings,
    priority: np.ndarray | None = None,
    progress: bool = False,
) -> list[tuple[int, int, float]]:
    """(removed_index, survivor_index, true_jaccard_to_survivor) sorted by removed_index."""
    n = len(texts)
    _check_priority(priority, n)
    if n < 2:
        return []
    with _threads(settings.workers):
        rows = _candidate_rows(texts, settings, progress)
        return _clusters(n, rows, priority, settings.threshold)


def near_duplicates_keyed(
    keys: np.ndarray,
    fetch: Fetch,
    settings: NearDupSettings,
    priority: np.ndarray | None = None,
    progress: bool = False,
    rows: np.ndarray | None = None,
    scratch: Path | None = None,
) -> list[tuple[int, int, float]]:
    """`near_duplicates` from precomputed band keys (see `band_keys_of`), for inputs too big
    to hold: `fetch(indices)` returns the texts of those rows of `keys`, and is called for
    candidate documents only, in ascending order, a batch at a time. `rows` restricts the
    input to those rows of `keys`; indices in the result (and `priority`) are positions in
    `rows`. `scratch` is a directory for the candidates' shingles (memory-mapped)."""
    n = keys.shape[0] if rows is None else len(rows)
    _check_priority(priority, n)
    if n < 2:
        return []
    with _threads(settings.workers):
        found = _keyed_rows(keys, fetch, settings, progress, rows, scratch)
        return _clusters(n, found, priority, settings.threshold)


def _check_priority(priority: np.ndarray | None, n: int) -> None:
    if priority is not None and len(priority) != n:
        raise ValueError(f"priority has {len(priority)} entries for {n} texts")


def _clusters(
    n: int,
    found: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    priority: np.ndarray | None,
    threshold: float,
) -> list[tuple[int, int, float]]:
    """Steps 3-5: verify candidate pairs into clusters, pick survivors, measure removals."""
    from pipeline.dedup.clusters import cluster_survivors
    from pipeline.dedup.lsh import jaccard_rows, union_verified

    docs, values, starts, ends, rows_l, rows_r = found
    roots = union_verified(values, starts, ends, rows_l, rows_r, float(threshold))
    labels = np.arange(n)
    labels[docs] = docs[roots]
    rank = np.zeros(n) if priority is None else np.asarray(priority)
    removed, survivors = cluster_survivors(labels, rank)
    # A chain a~b~c clusters a with c: report c's own Jaccard to the survivor, not b's.
    row_of = np.searchsorted  # every clustered document is a candidate, so it has a row
    sims = jaccard_rows(values, starts, ends, row_of(docs, removed), row_of(docs, survivors))
    return [(int(r), int(s), float(j)) for r, s, j in zip(removed, survivors, sims, strict=True)]
