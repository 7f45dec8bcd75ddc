"""Exact duplicates on normalised text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xxhash


def exact_duplicates(keys: Sequence[str], priority: np.ndarray) -> list[tuple[int, int]]:
    """(removed_index, survivor_index) for every record whose key another record shares.

    The survivor of a group is the member with the lowest `priority`. Keys are hashed to
    128 bits: a collision is about as likely as a cosmic-ray bit flip, and it saves
    holding every normalised text as a dict key.
    """
    best: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        digest = xxhash.xxh3_128_intdigest(key.encode("utf-8"))
        current = best.get(digest)
        if current is None:
            best[digest] = index
            continue
        members.setdefault(digest, [current]).append(index)
        if priority[index] < priority[current]:
            best[digest] = index
    pairs: list[tuple[int, int]] = []
    for digest, group in members.items():
        survivor = best[digest]
        pairs.extend((index, survivor) for index in group if index != survivor)
    pairs.sort()
    return pairs
