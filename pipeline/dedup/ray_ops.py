"""The per-batch and per-partition operations of the Ray engine (`dedup.engine=ray`).

Each function takes and returns a pyarrow Table, so Ray Data runs it in `map_batches` or
`map_groups` on any worker; none imports Ray. Each reuses the local engine's own functions
(redaction, normalisation, the exact hash, MinHash band keys, the quality filters, the
windowed bucket pairs, the Jaccard kernels), so both engines decide alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.dedup.near_settings import NearDupSettings
from pipeline.dedup.normalize import normalize

# One redaction: (field, type, count) of one record, in the order the local intake lists them.
REDACTION = pa.list_(pa.struct([("field", pa.string()), ("type", pa.string()),
                                ("count", pa.int32())]))  # fmt: skip
PRIME = np.uint64(0x9E3779B97F4A7C15)  # spreads (band, key) and pairs over partitions


@dataclass(frozen=True)
class Prepare:
    """What `prepare` computes per record: the redaction settings and, per curation step run
    on Ray, its kind and settings (exact: fields; near: NearDupSettings; quality: filters)."""

    secrets: Any  # SecretSettings | None
    pii: Any  # PiiSettings | None
    steps: tuple[tuple[str, str, Any], ...]  # (name, "exact" | "near" | "quality", settings)


def _records(table: pa.Table) -> list[SimpleNamespace]:
    return [SimpleNamespace(**row) for row in table.to_pylist()]


def _redactions(rows: Sequence[tuple[str, str, str, int]], ids: Sequence[str]) -> pa.Array:
    """Per record (in `ids` order) its (field, type, count) redactions, in listed order."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for record_id, name, kind, count in rows:
        by_id.setdefault(record_id, []).append({"field": name, "type": kind, "count": count})
    return pa.array([by_id.get(i, []) for i in ids], REDACTION)


def numbered(table: pa.Table, offsets: np.ndarray) -> pa.Table:
    """Parsed records (`ray_read`) with their input index `idx` (their read unit's first
    record's index plus their place in the unit), the reader's columns dropped but the
    keep-policy keys and each record's size before redaction (`_chars`)."""
    idx = offsets[table.column("_unit").to_numpy()] + table.column("_seq").to_numpy()
    keep = [n for n in table.column_names
            if n not in ("_unit", "_seq", "_line", "_kind", "_side")]  # fmt: skip
    return table.select(keep).append_column("idx", pa.array(idx, pa.int64()))


def prepare(table: pa.Table, spec: Prepare, offsets: np.ndarray) -> pa.Table:
    """Number the records (`numbered`), redact secrets, then PII (as the local intake does),
    then per step: the exact hash of the normalised fields, the near step's LSH band keys,
    the first quality failure."""
    from pipeline.dedup.exact import key_hashes
    from pipeline.dedup.intake import _redact_pii, _redact_records, _redact_secrets

    table = numbered(table, offsets)
    records = _records(table)
    ids = [r.id for r in records]
    secret_rows = _redact_records(spec.secrets, records, _redact_secrets)
    pii_rows = _redact_records(spec.pii, records, _redact_pii)
    out = table
    for name in ("prompt", "response"):
        column = pa.array([getattr(r, name) for r in records], table.schema.field(name).type)
        out = out.set_column(out.schema.get_field_index(name), name, column)
    out = out.append_column("secret_redactions", _redactions(secret_rows, ids))
    out = out.append_column("pii_redactions", _redactions(pii_rows, ids))
    for name, kind, settings in spec.steps:
        if kind == "exact":
            keys = ["\x1f".join(normalize(getattr(r, f)) for f in settings) for r in records]
            hashes = key_hashes(keys)
            out = out.append_column(f"{name}.h0", pa.array(hashes[:, 0], pa.uint64()))
            out = out.append_column(f"{name}.h1", pa.array(hashes[:, 1], pa.uint64()))
        elif kind == "near":
            from pipeline.dedup.minhash import band_keys_of

            bands = band_keys_of(near_texts(records, settings), settings)
            flat = pa.array(bands.reshape(-1), pa.uint64())
            out = out.append_column(
                f"{name}.bands", pa.FixedSizeListArray.from_arrays(flat, settings.bands)
            )
        else:
            out = _append_quality(out, name, records, settings)
    return out


def near_texts(records: Sequence[Any], settings: NearDupSettings) -> list[str]:
    """The text the near step shingles: the normalised fields joined by a newline."""
    return ["\n".join(normalize(getattr(r, f)) for f in settings.fields) for r in records]


def _append_quality(
    out: pa.Table, name: str, records: Sequence[Any], filters: Sequence[Any]
) -> pa.Table:
    from pipeline.dedup.steps.quality import first_failure

    fails = [first_failure(filters, r) if filters else None for r in records]
    columns = {
        "filter": pa.array([f and f.filter for f in fails], pa.string()),
        "value": pa.array([f and f.value for f in fails], pa.float64()),
        "threshold": pa.array([f and f.threshold for f in fails], pa.float64()),
        "bound": pa.array([f and f.bound for f in fails], pa.string()),
        "detail": pa.array([f and " ".join(filter(None, (f.field, f.detail))) for f in fails],
                           pa.string()),
    }  # fmt: skip
    for key, column in columns.items():
        out = out.append_column(f"{name}.{key}", column)
    return out


def with_rank(table: pa.Table, rank: np.ndarray, alive: np.ndarray) -> pa.Table:
    """The rows still kept (`alive[idx]`), with their keep-policy rank."""
    idx = table.column("idx").to_numpy()
    keep = alive[idx]
    out = table.filter(pa.array(keep))
    out = out.append_column("rank", pa.array(rank[idx[keep]], pa.int64()))
    return out


def exact_parts(table: pa.Table, name: str, parts: int) -> pa.Table:
    """The exact step's rows with their partition: a function of the hash, so a group of
    copies lands whole in one partition."""
    h0 = table.column(f"{name}.h0").to_numpy()
    return table.append_column("part", pa.array((h0 % np.uint64(parts)).astype(np.int64)))


def exact_group(table: pa.Table, name: str) -> pa.Table:
    """(idx, of_idx) of every copy in one partition: the local `exact_pairs` on its rows."""
    from pipeline.dedup.exact import exact_pairs

    hashes = np.stack([table.column(f"{name}.h0").to_numpy(),
                       table.column(f"{name}.h1").to_numpy()], axis=1)  # fmt: skip
    removed, survivor = exact_pairs(hashes, table.column("rank").to_numpy())
    idx = table.column("idx").to_numpy()
    return pa.table({"idx": idx[removed], "of_idx": idx[survivor]})


def explode_bands(table: pa.Table, name: str, parts: int) -> pa.Table:
    """One (band, key, idx) row per record and band, with the partition of its bucket."""
    idx = table.column("idx").to_numpy()
    column = table.column(f"{name}.bands").combine_chunks()
    bands = column.type.list_size
    key = column.flatten().to_numpy(zero_copy_only=False).astype(np.uint64)
    band = np.tile(np.arange(bands, dtype=np.uint64), len(idx))
    mixed = (key ^ (band * PRIME)) * PRIME
    return pa.table({
        "band": pa.array(band.astype(np.int64)),
        "key": pa.array(key, pa.uint64()),
        "idx": pa.array(np.repeat(idx, bands), pa.int64()),
        "part": pa.array((mixed % np.uint64(parts)).astype(np.int64)),
    })  # fmt: skip


def bucket_pairs(table: pa.Table, window: int = 32) -> pa.Table:
    """Candidate pairs (left < right, as idx) of the buckets in one partition: in each
    (band, key) bucket, ordered by idx, each record and the next `window` members, as the
    local `candidate_pairs` pairs them."""
    band = table.column("band").to_numpy()
    key = table.column("key").to_numpy()
    idx = table.column("idx").to_numpy()
    order = np.lexsort((idx, key, band))
    band, key, idx = band[order], key[order], idx[order]
    lefts, rights = [], []
    for step in range(1, window + 1):
        same = (key[step:] == key[:-step]) & (band[step:] == band[:-step])
        if not same.any():
            break
        lefts.append(idx[:-step][same])
        rights.append(idx[step:][same])
    left = np.concatenate(lefts) if lefts else np.zeros(0, np.int64)
    right = np.concatenate(rights) if rights else np.zeros(0, np.int64)
    return pa.table({"left": pa.array(left, pa.int64()), "right": pa.array(right, pa.int64())})


def pair_parts(table: pa.Table, parts: int) -> pa.Table:
    """Pairs with the partition of the pair, so every copy of a pair meets its twins."""
    left = table.column("left").to_numpy().astype(np.uint64)
    right = table.column("right").to_numpy().astype(np.uint64)
    mixed = (left * PRIME) ^ (right + PRIME) * PRIME
    return table.append_column("part", pa.array((mixed % np.uint64(parts)).astype(np.int64)))


def unique_pairs(table: pa.Table) -> pa.Table:
    """The distinct pairs of one partition."""
    left, right = table.column("left").to_numpy(), table.column("right").to_numpy()
    codes = np.unique(np.stack([left, right], axis=1), axis=0) if len(left) else np.zeros((0, 2))
    return pa.table({"left": pa.array(codes[:, 0], pa.int64()),
                     "right": pa.array(codes[:, 1], pa.int64())})  # fmt: skip


def jaccard(table: pa.Table, settings: NearDupSettings, threshold: float) -> pa.Table:
    """Each pair's true Jaccard from the texts joined to it (`l.<field>`, `r.<field>`): the
    local `verify_pairs` kernel, 0.0 below `threshold` (0: always the exact value)."""
    from pipeline.dedup.lsh import verify_pairs
    from pipeline.dedup.minhash import _threads
    from pipeline.dedup.shingles import shingle_sets

    n = table.num_rows
    texts = []
    for side in ("l", "r"):
        rows = table.select([f"{side}.{f}" for f in settings.fields]).to_pylist()
        texts.extend("\n".join(normalize(v) for v in row.values()) for row in rows)
    with _threads(settings.workers):
        values, offsets = shingle_sets(texts, settings.shingle, settings.ngram, settings.seed)
        rows_l = np.arange(n, dtype=np.int64)
        sims = verify_pairs(values, offsets, rows_l, rows_l + n, float(threshold))
    return pa.table({"left": table.column("left"), "right": table.column("right"),
                     "similarity": pa.array(sims, pa.float64())})  # fmt: skip


# Connected components as Ray Data operations: the alternating large-star / small-star
# rounds of Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014).
# The graph is an edge table (a, b); each round is two groupbys on a partition of one
# endpoint, with every edge of that endpoint in one group. It ends in stars: each edge
# (leaf, centre), the centre its component's smallest idx. `changed` (int8, the same on
# every row of a group) says whether a group's edges still moved; a round where neither
# star changed anything is the fixed point.


def as_edges(table: pa.Table) -> pa.Table:
    """Verified pairs (left, right) as the graph's edges (a, b)."""
    return pa.table({"a": table.column("left"), "b": table.column("right")})


def part_of(node: np.ndarray, parts: int) -> np.ndarray:
    """The shuffle partition of each node (record index or rid): a multiplicative hash."""
    return ((node.astype(np.uint64) * PRIME) % np.uint64(parts)).astype(np.int64)


def star_rows(table: pa.Table, parts: int, both: bool) -> pa.Table:
    """The edges keyed for a star: (node, other, part of node). `both`: each edge under
    both endpoints (large-star sees every neighbour; a round starts, `changed` is 0); else
    under its larger endpoint only (small-star sees the neighbours below the node), carrying
    large-star's `changed` on."""
    a, b = table.column("a").to_numpy(), table.column("b").to_numpy()
    if both:  # a round starts: nothing changed yet
        node, other = np.concatenate([a, b]), np.concatenate([b, a])
        changed = np.zeros(len(node), np.int8)
    else:
        changed = table.column("changed").to_numpy()
        node, other = np.maximum(a, b), np.minimum(a, b)
    return pa.table({"node": pa.array(node, pa.int64()), "other": pa.array(other, pa.int64()),
                     "changed": pa.array(changed, pa.int8()),
                     "part": pa.array(part_of(node, parts))})  # fmt: skip


def _neighbours(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (node, other) sorted by node then other, the first row of each node, and
    each row's node's smallest neighbour."""
    node, other = table.column("node").to_numpy(), table.column("other").to_numpy()
    keep = node != other
    pairs = np.unique(np.stack([node[keep], other[keep]], axis=1), axis=0)
    node, other = pairs[:, 0], pairs[:, 1]
    first = np.ones(len(node), bool)
    first[1:] = node[1:] != node[:-1]
    starts = np.flatnonzero(first)
    low = np.minimum.reduceat(other, starts) if len(starts) else np.zeros(0, np.int64)
    return node, other, starts, np.repeat(low, np.diff(np.append(starts, len(node))))


def _edges(a: np.ndarray, b: np.ndarray, changed: bool) -> pa.Table:
    return pa.table({"a": pa.array(a, pa.int64()), "b": pa.array(b, pa.int64()),
                     "changed": pa.array(np.full(len(a), int(changed), np.int8))})  # fmt: skip


def large_star(table: pa.Table) -> pa.Table:
    """Each node links its larger neighbours to the smallest of itself and its neighbours.
    Changed where a node has both smaller and larger neighbours."""
    carried = bool(len(table)) and bool(table.column("changed").to_numpy().any())
    node, other, _, low = _neighbours(table)
    m = np.minimum(node, low)
    larger = other > node
    moved = bool((larger & (m < node)).any())
    return _edges(other[larger], m[larger], carried or moved)


def small_star(table: pa.Table) -> pa.Table:
    """Each node (given its neighbours not above it) links itself and them to the smallest
    of them. Changed where a node has two or more smaller neighbours."""
    carried = bool(len(table)) and bool(table.column("changed").to_numpy().any())
    node, other, starts, low = _neighbours(table)
    moved = bool((np.diff(np.append(starts, len(node))) > 1).any())
    heads = node[starts]
    rest = other != low  # the smallest neighbour links to itself: no edge
    a = np.concatenate([heads, other[rest]])
    b = np.concatenate([low[starts], low[rest]])
    return _edges(a, b, carried or moved)


def any_changed(table: pa.Table) -> pa.Table:
    """One row per block: did any of its edges still move this round."""
    changed = table.column("changed").to_numpy() if table.num_rows else np.zeros(0, np.int8)
    return pa.table({"changed": pa.array([bool(changed.any())])})


def keep_parts(table: pa.Table, parts: int) -> pa.Table:
    """The final stars' edges (a leaf, b its centre) with the partition of the centre."""
    return table.append_column("part", pa.array(part_of(table.column("b").to_numpy(), parts)))


def keep_policy(table: pa.Table, rank: np.ndarray) -> pa.Table:
    """(idx, of_idx) per clustered record but the survivor, for the clusters (all their
    star edges) of one partition: the local `cluster_survivors` on the members' ranks (the
    lowest rank survives, the lowest idx breaking ties)."""
    from pipeline.dedup.clusters import cluster_survivors

    leaf, centre = table.column("a").to_numpy(), table.column("b").to_numpy()
    members = np.unique(np.concatenate([leaf, centre]))
    label = members.copy()
    label[np.searchsorted(members, leaf)] = centre
    cluster = np.searchsorted(members, label)
    removed, survivor = cluster_survivors(cluster, rank[members])
    return pa.table({"left": pa.array(members[removed], pa.int64()),
                     "right": pa.array(members[survivor], pa.int64())})  # fmt: skip


# Texts attached to pairs without a join: Ray Data's hash join collects its input in a few
# aggregator actors (at most two per CPU), each holding its share of every record's text, so
# their memory grows with the record count. Here the pairs and the texts go through one
# partitioned groupby on the record they share (the sort shuffle's tasks, one partition
# each), and `attach` matches them inside each partition: memory per task follows the
# partition count. Rows of both kinds share one schema: (key, part, kind, left, right,
# t.<field>..., carried columns).
TEXT, PAIR = 0, 1


def _keyed(n: int, key: np.ndarray, parts: int, kind: int, columns: dict[str, Any]) -> pa.Table:
    return pa.table({"key": pa.array(key, pa.int64()), "part": pa.array(part_of(key, parts)),
                     "kind": pa.array(np.full(n, kind, np.int8)), **columns})  # fmt: skip


def text_rows(
    table: pa.Table,
    fields: Sequence[str],
    parts: int,
    carry: Sequence[str],
    needed: np.ndarray | None = None,
) -> pa.Table:
    """Records (idx, fields) as text rows keyed by idx; with `needed` (a mask over all
    records' idx), only those records."""
    if needed is not None:
        table = table.filter(pa.array(needed[table.column("idx").to_numpy()]))
    n, idx = table.num_rows, table.column("idx").to_numpy()
    nulls = pa.nulls(n, pa.int64())
    columns: dict[str, Any] = {"left": nulls, "right": nulls}
    columns |= {f"t.{f}": table.column(f).cast(pa.string()) for f in fields}
    columns |= {c: pa.nulls(n, pa.string()) for c in carry}
    return _keyed(n, idx, parts, TEXT, columns)


def pair_rows(
    table: pa.Table, side: str, fields: Sequence[str], parts: int, carry: Sequence[str]
) -> pa.Table:
    """Pairs (left, right, carried columns) keyed by their `side` record."""
    n = table.num_rows
    columns: dict[str, Any] = {"left": table.column("left"), "right": table.column("right")}
    columns |= {f"t.{f}": pa.nulls(n, pa.string()) for f in fields}
    columns |= {c: table.column(c).cast(pa.string()) for c in carry}
    return _keyed(n, table.column(side).to_numpy(), parts, PAIR, columns)


def attach(table: pa.Table, side: str, fields: Sequence[str], carry: Sequence[str]) -> pa.Table:
    """In one partition: each pair with its `side` record's fields as `<l|r>.<field>` (an
    inner join: a pair whose record is absent is dropped)."""
    kind = table.column("kind").to_numpy()
    texts, pairs = table.filter(pa.array(kind == TEXT)), table.filter(pa.array(kind == PAIR))
    text_key, pair_key = texts.column("key").to_numpy(), pairs.column("key").to_numpy()
    order = np.argsort(text_key, kind="stable")
    pos = np.searchsorted(text_key[order], pair_key)
    found = pos < len(order)
    found[found] = text_key[order][pos[found]] == pair_key[found]
    pairs, rows = pairs.filter(pa.array(found)), pa.array(order[pos[found]], pa.int64())
    out = pairs.select(["left", "right", *carry])
    for f in fields:
        out = out.append_column(f"{side[0]}.{f}", texts.column(f"t.{f}").take(rows))
    return out
