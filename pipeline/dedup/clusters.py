"""The survivor of each duplicate cluster under the keep policy's ranks (near, semantic)."""

from __future__ import annotations

import numpy as np


def cluster_survivors(cluster: np.ndarray, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(removed, survivor) positions, sorted by removed: in each cluster (the positions that
    share a `cluster` label, itself a position < n) the lowest-`rank` member survives, the
    input position breaking ties. The near and semantic steps share it."""
    n = len(cluster)
    order = np.lexsort((np.arange(n), rank, cluster))  # by cluster, then rank, position
    first = np.ones(n, bool)
    first[1:] = cluster[order][1:] != cluster[order][:-1]
    survivor_of = np.empty(n, np.int64)
    survivor_of[cluster[order][first]] = order[first]
    removed = np.sort(order[~first])
    return removed, survivor_of[cluster[removed]]
