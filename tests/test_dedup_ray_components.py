"""The Ray engine's connected components (large-star / small-star rounds) and keep policy
per cluster: the same clusters and survivors as scipy and the local `cluster_survivors`.

The star operations are checked first as plain functions over partitions (each partition
one `map_groups` call, as Ray Data runs them), on graphs whose chains need many rounds;
then `components` and the keep policy on a real local Ray cluster."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline.dedup import ray_ops
from pipeline.dedup.clusters import cluster_survivors


def _by_part(table: pa.Table, op: Callable[[pa.Table], pa.Table]) -> pa.Table:
    """`groupby("part").map_groups(op)` without Ray: one call per partition value."""
    part = table.column("part").to_numpy()
    outs = [op(table.filter(pa.array(part == p))) for p in np.unique(part)]
    return pa.concat_tables(outs) if outs else table.select([])


def _stars(a: np.ndarray, b: np.ndarray, parts: int) -> tuple[pa.Table, int]:
    edges = pa.table({"a": pa.array(a, pa.int64()), "b": pa.array(b, pa.int64())})
    for rounds in range(1, 200):
        large = _by_part(ray_ops.star_rows(edges, parts, True), ray_ops.large_star)
        edges = _by_part(ray_ops.star_rows(large, parts, False), ray_ops.small_star)
        if not edges.column("changed").to_numpy().any():
            return edges, rounds
    raise AssertionError("did not settle")


def _scipy_labels(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _labels_of(stars: pa.Table, n: int) -> np.ndarray:
    """Each node's component as its smallest member (itself when in no edge)."""
    label = np.arange(n)
    leaf, centre = stars.column("a").to_numpy(), stars.column("b").to_numpy()
    assert (centre < leaf).all()
    label[leaf] = centre
    return label


def _same_partition(x: np.ndarray, y: np.ndarray) -> bool:
    """Two labelings describe the same clusters."""
    pairs = set(zip(x.tolist(), y.tolist(), strict=True))
    return len(pairs) == len(set(x.tolist())) == len(set(y.tolist()))


def _chains(rng: np.random.Generator, n: int, lengths: list[int]) -> tuple[np.ndarray, ...]:
    """Paths of the given lengths over scrambled ids, plus a few random extra edges."""
    ids = rng.permutation(n)
    a, b, at = [], [], 0
    for length in lengths:
        path = ids[at : at + length]
        a.extend(path[:-1])
        b.extend(path[1:])
        at += length
    return np.array(a), np.array(b)


@pytest.mark.parametrize("parts", [1, 3, 8])
def test_stars_are_the_connected_components(parts: int) -> None:
    rng = np.random.default_rng(parts)
    n = 3_000
    a, b = _chains(rng, n, [400, 150, 60, 2, 2, 3, 30])
    extra_a, extra_b = rng.integers(0, n, 300), rng.integers(0, n, 300)
    a, b = np.concatenate([a, extra_a, a[:50]]), np.concatenate([b, extra_b, b[:50]])  # repeats
    stars, rounds = _stars(a, b, parts)
    assert rounds >= 3  # a 400-long scrambled path does not settle at once
    labels = _labels_of(stars, n)
    assert _same_partition(labels, _scipy_labels(n, a, b))
    # The centre is the smallest member of its component.
    for label in np.unique(labels):
        assert label == np.flatnonzero(labels == label).min()


def test_a_straight_path_needs_several_rounds_and_ends_as_one_star() -> None:
    n = 257
    a, b = np.arange(n - 1)[::-1], np.arange(1, n)[::-1]
    stars, rounds = _stars(a, b, 4)
    assert rounds >= 2
    assert set(stars.column("b").to_pylist()) == {0}
    assert set(stars.column("a").to_pylist()) == set(range(1, n))


def test_keep_policy_per_cluster_is_the_local_one() -> None:
    rng = np.random.default_rng(7)
    n = 2_000
    a, b = _chains(rng, n, [50, 7, 3, 2, 90])
    rank = rng.integers(0, 5, n)  # ties: the lowest idx among the best rank survives
    stars, _ = _stars(a, b, 4)
    kept = _by_part(ray_ops.keep_parts(stars, 4), lambda t: ray_ops.keep_policy(t, rank))
    got = sorted(zip(kept.column("left").to_pylist(), kept.column("right").to_pylist(),
                     strict=True))  # fmt: skip
    nodes = np.unique(np.concatenate([a, b]))
    local = np.unique(_scipy_labels(n, a, b)[nodes], return_inverse=True)[1]
    removed, survivor = cluster_survivors(local, rank[nodes])
    assert got == sorted(zip(nodes[removed].tolist(), nodes[survivor].tolist(), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("shuffle", ["sort", "push", "hash"])
def test_components_on_ray(shuffle: str) -> None:
    from pipeline.dedup.ray_engine import RaySettings, cluster, components

    rng = np.random.default_rng(3)
    n = 5_000
    a, b = _chains(rng, n, [600, 200, 20, 2])
    half = len(a) // 2
    settings = RaySettings(num_cpus=2, object_store_memory=300_000_000, shuffle=shuffle)
    with cluster(settings) as ray:
        # 9 blocks in, from a union, as the engine's attach steps make them.
        edges = ray.data.from_arrow(pa.table({"a": a[:half], "b": b[:half]})).repartition(5)
        edges = edges.union(
            ray.data.from_arrow(pa.table({"a": a[half:], "b": b[half:]})).repartition(4)
        )
        stars, rounds = components(edges, 3)
        blocks = stars.num_blocks()
        table = pa.concat_tables(list(stars.iter_batches(batch_format="pyarrow",
                                                         batch_size=None)))  # fmt: skip
    assert rounds >= 3
    # The sort shuffles make one partition per input block; `grouped` sets them to 3 first.
    # The hash shuffle takes the count.
    assert blocks == 3
    assert _same_partition(_labels_of(table, n), _scipy_labels(n, a, b))
