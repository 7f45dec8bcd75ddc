"""Exact duplicates on normalised text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xxhash


def key_hashes(keys: Sequence[str]) -> np.ndarray:
    """128-bit hashes of normalised keys as an (n, 2) uint64 array.

    A collision is about as likely as a cosmic-ray bit flip, and it saves holding every
    normalised text: the stage keeps 16 bytes per record, whatever the text's length.
    """
    out = np.empty((len(keys), 2), np.uint64)
    for index, key in enumerate(keys):
        digest = xxhash.xxh3_128_intdigest(key.encode("utf-8"))
        out[index, 0] = digest >> 64
        out[index, 1] = digest & 0xFFFFFFFFFFFFFFFF
    return out


def exact_pairs(hashes: np.ndarray, priority: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(removed, survivor) index arrays, sorted by removed index: every record whose hash
    another record shares, and the member of its group with the lowest `priority`."""
    n = len(hashes)
    if n == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty
    order = np.lexsort((priority, hashes[:, 1], hashes[:, 0]))  # group, then best first
    ordered = hashes[order]
    first = np.ones(n, bool)
    first[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    group = np.cumsum(first) - 1
    survivor = order[first][group]
    removed = ~first
    pairs = np.stack([order[removed], survivor[removed]], axis=1)
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


def exact_duplicates(keys: Sequence[str], priority: np.ndarray) -> list[tuple[int, int]]:
    """(removed_index, survivor_index) for every record whose key another record shares.

    The survivor of a group is the member with the lowest `priority`.
    """
    removed, survivor = exact_pairs(key_hashes(keys), np.asarray(priority))
    return [(int(r), int(s)) for r, s in zip(removed, survivor, strict=True)]
