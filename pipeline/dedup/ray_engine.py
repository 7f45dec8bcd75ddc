"""The dedup stage on Ray Data (`dedup.engine=ray`): the same decisions as the local engine.

Reading and validation run on Ray too (`ray_read`: one task per file or byte range, the
local readers and collector in each, ids made unique across the units by a groupby on the
rid); the driver stages the rejections and preferences and adds up the counts. Then:

1. `map_batches(prepare)`: the records' input index (from each unit's first), secrets and
   PII redaction, normalisation, the exact step's hash, the near step's MinHash band keys,
   the quality filters (`ray_ops.prepare`);
2. exact: a groupby on a partition of the hash, the local `exact_pairs` in each group;
3. near: one row per (band, key), a groupby on a partition of the bucket, the windowed
   bucket pairs in each; a groupby on the pair drops repeats; two groupbys attach both
   texts (`_attach`: the texts of the records some pair names, not all) and `map_batches`
   verifies the true Jaccard; the verified edges stay on the cluster: connected
   components by large-star / small-star rounds (two groupbys each, until a round changes
   nothing), the keep policy by a groupby per cluster, and the texts attached again to
   measure each dropped record's Jaccard to its survivor; the driver collects one
   (removed, survivor, Jaccard) row per near duplicate.

Each shuffle has one partition per `records_per_partition` rows of its input (or the fixed
`partitions`), so a task's share does not grow with the record count.

The driver stages the redacted records, in input order, in the same scratch DuckDB as the
local engine, and the stage publishes the store and records.parquet from it unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.dedup import ray_ops
from pipeline.dedup.intake import Intake
from pipeline.dedup.steps import Step, StepResult, Survivors, run_steps
from pipeline.dedup.steps.base import Decisions, Filtered
from pipeline.dedup.steps.exact import ExactDedup
from pipeline.dedup.steps.near import NearDedup
from pipeline.dedup.steps.quality import QualityFilter
from pipeline.errors import UserInputError
from pipeline.ray_cluster import cluster as ray_cluster
from pipeline.ray_cluster import parse_size

# dedup.ray.shuffle: its values and Ray Data's ShuffleStrategy for each (named, so this
# module imports no Ray).
SHUFFLES = {"sort": "SORT_SHUFFLE_PULL_BASED", "push": "SORT_SHUFFLE_PUSH_BASED",
            "hash": "HASH_SHUFFLE"}  # fmt: skip


@dataclass(frozen=True)
class RaySettings:
    """`dedup.ray` of the config."""

    address: str | None = None  # None: start a local cluster for the run
    num_cpus: int = 2  # CPUs of the local cluster (ignored with an address)
    object_store_memory: int = 1_000_000_000  # bytes of the local cluster's object store
    # Groups of each shuffle (exact hashes, LSH buckets, pairs, component edges). None: one
    # per `records_per_partition` rows of the shuffle's input, so a task's share, and the
    # memory of a worker, stays the same whatever the record count.
    partitions: int | None = None
    records_per_partition: int = 10_000
    # Ray Data's groupby shuffle: "sort" (pull-based, plain tasks), "push" (the same sort
    # with push-based merging: no faster at 1M here) or "hash" (aggregator actors, started
    # per shuffle: ~4 s each on 2 cores). Joins always hash.
    shuffle: str = "sort"

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> RaySettings:
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise UserInputError(f"config dedup.ray: unknown key(s) {', '.join(unknown)}")
        address = cfg.get("address")
        num_cpus = cfg.get("num_cpus", cls.num_cpus)
        partitions = cfg.get("partitions", cls.partitions)
        per_partition = cfg.get("records_per_partition", cls.records_per_partition)
        for key, value in (("num_cpus", num_cpus), ("partitions", partitions),
                           ("records_per_partition", per_partition)):  # fmt: skip
            if key == "partitions" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserInputError(f"config dedup.ray.{key}={value!r}: must be >= 1")
        store = parse_size(cfg.get("object_store_memory", "1GB"), "dedup.ray.object_store_memory")
        shuffle = cfg.get("shuffle", cls.shuffle)
        if shuffle not in SHUFFLES:
            raise UserInputError(
                f"config dedup.ray.shuffle={shuffle!r}: expected one of {', '.join(SHUFFLES)}"
            )
        return cls(str(address) if address else None, num_cpus, store, partitions,
                   per_partition, shuffle)  # fmt: skip

    def parts(self, rows: int) -> int:
        """The partitions of a shuffle of `rows` rows: `partitions`, or one per
        `records_per_partition` rows."""
        if self.partitions is not None:
            return self.partitions
        return max(1, -(-int(rows) // self.records_per_partition))


def check_steps(steps: Mapping[str, Step]) -> None:
    """Fail before reading anything when a step cannot run on the Ray engine: one that keeps
    per-record state while streaming and is not one of exact, near and quality."""
    for name, step in steps.items():
        if isinstance(step, ExactDedup | NearDedup | QualityFilter):
            continue
        if type(step).observe is not Step.observe:
            raise UserInputError(
                f"dedup.engine=ray: step {name!r} ({type(step).__name__}) observes records "
                "while streaming and is not on ray yet; run it with dedup.engine=local"
            )


@contextmanager
def cluster(settings: RaySettings) -> Iterator[Any]:
    """Ray for the run: a local cluster (settings.num_cpus, a small object store) or the one
    at settings.address (`pipeline/ray_cluster.py`, shared with `embed.engine=ray`), with
    the shuffle settings of this engine."""
    with ray_cluster(settings.address, settings.num_cpus, settings.object_store_memory,
                     "dedup.engine") as ray:  # fmt: skip
        from ray.data.context import ShuffleStrategy

        ctx = ray.data.DataContext.get_current()
        ctx.shuffle_strategy = ShuffleStrategy[SHUFFLES[settings.shuffle]]
        # Hash-shuffle aggregators (`shuffle: hash`, joins) ask for CPUs; on a 1-CPU cluster
        # the shuffle's own tasks hold it and the aggregators never start (a hang). They
        # reserve none here. (The engine itself uses no join: `_attach`.)
        ctx.hash_shuffle_operator_actor_num_cpus_override = 0.0
        ctx.join_operator_actor_num_cpus_override = 0.0
        yield ray


class RayIntake(Intake):
    """The run's intake on the driver: its counts, the keep-policy keys of every record (for
    the ranks) and the staging database. Reading and validation run on Ray (`read`)."""

    def first_id(self, rid: int) -> str | None:  # pragma: no cover - the units look up ids
        return None


@contextmanager
def _ordered(ray: Any) -> Iterator[None]:
    """Ray Data keeps the blocks' order meanwhile (reading and `prepare`: input order)."""
    options = ray.data.DataContext.get_current().execution_options
    before, options.preserve_order = options.preserve_order, True
    try:
        yield
    finally:
        options.preserve_order = before


def read(
    ray: Any,
    intake: RayIntake,
    files: list[tuple[Any, str]],
    stats: Any,
    fields: Any,
    validate: Any,
    format: str,
    settings: RaySettings,
) -> tuple[Any, np.ndarray]:
    """Read and validate every input file on Ray (`ray_read`); stage the rejections and
    preferences in input order and add up the counts here. Returns the records (a dataset
    in input order, not yet numbered) and each read unit's first record's index."""
    from pipeline.dedup import ray_read

    begin = time.perf_counter()
    units = ray_read.plan_units(files)
    spec = ray_read.ReadSpec(fields, validate, format, intake.settings, intake.erasures,
                             dict(intake.feedback), tuple(u["rel"] for u in units))  # fmt: skip
    with _ordered(ray):
        parsed, sides = ray_read.read_units(ray, units, spec, settings.parts)
    stats.files.extend(rel for _, rel in files)
    error = next((side.error for side in sides if side.error is not None), None)
    if error is not None:
        raise error
    offsets = np.zeros(len(units), np.int64)
    for unit, side in enumerate(sides):
        offsets[unit] = intake.counts.staged
        stats.lines += side.lines
        stats.blank += side.blank
        ray_read.merge_counts(intake.counts, side.counts)
        for name, table in (("rejected", side.rejected), ("preferences", side.preferences)):
            if table is not None:
                intake.staging.append(name, table)
    intake.seconds["ray_read"] += time.perf_counter() - begin
    return parsed.filter(expr=f"_kind == {ray_read.RECORD}"), offsets


def _spec(intake: Intake, steps: Mapping[str, Step]) -> ray_ops.Prepare:
    per_step: list[tuple[str, str, Any]] = []
    for name, step in steps.items():
        if isinstance(step, ExactDedup):
            per_step.append((name, "exact", step.fields))
        elif isinstance(step, NearDedup):
            per_step.append((name, "near", step.settings))
        elif isinstance(step, QualityFilter):
            per_step.append((name, "quality", step.filters))
    return ray_ops.Prepare(intake.settings.secrets, intake.settings.pii, tuple(per_step))


def prepare_and_stage(
    ray: Any, intake: RayIntake, steps: Mapping[str, Step], records: Any, offsets: np.ndarray
) -> Any:
    """Run `prepare` over the records on Ray; stage the redacted records and their
    redactions in input order, keep their keep-policy keys; return the prepared dataset
    (materialized) and the quality failures per quality step."""
    from pipeline.dedup import ray_read, tables
    from pipeline.dedup.intake import BATCH_CHARS
    from pipeline.store.staging import STAGED_SCHEMA

    begin = time.perf_counter()
    spec = _spec(intake, steps)
    if intake.counts.staged == 0:
        return None, {}
    with _ordered(ray):
        prepared = records.map_batches(
            ray_ops.prepare, fn_kwargs={"spec": spec, "offsets": offsets},
            batch_format="pyarrow", batch_size=None,
        ).materialize()  # fmt: skip
    policy_keys = ray_read.policy_keys(intake.settings)
    quality = [name for name, kind, _ in spec.steps if kind == "quality"]
    failed: dict[str, list[pa.Table]] = {name: [] for name in quality}
    # The local intake stages each batch's secret rows, then its PII rows; a batch ends at
    # batch_records records or BATCH_CHARS characters (before redaction).
    batches = _Batches(intake.settings.batch_records, BATCH_CHARS)
    pending: dict[int, tuple[list[Any], list[Any]]] = {}
    expected = 0
    for block in prepared.iter_batches(batch_format="pyarrow", batch_size=None):
        idx = block.column("idx").to_numpy()
        if len(idx) and (idx[0] != expected or (np.diff(idx) != 1).any()):
            raise RuntimeError("ray engine: prepared blocks came back out of input order")
        expected += len(idx)
        intake.staging.append("staged", block.select(STAGED_SCHEMA.names))
        intake._policy.append([block.column(f"policy.{i}").to_numpy() for i in range(policy_keys)])
        batch = batches.of(block.column("_chars").to_numpy())
        ids = block.column("id").to_pylist()
        for number, kind in ((0, "secret_redactions"), (1, "pii_redactions")):
            rows = [(i, r["field"], r["type"], r["count"])
                    for i, reds in zip(ids, block.column(kind).to_pylist(), strict=True)
                    for r in reds]  # fmt: skip
            for batch_no, group in _by_batch(batch, rows, ids):
                pending.setdefault(batch_no, ([], []))[number].extend(group)
        done = [b for b in pending if len(batch) and b < int(batch[-1])]
        for b in sorted(done):
            secret_rows, pii_rows = pending.pop(b)
            _count_and_stage(intake, tables, secret_rows, pii_rows)
        for name in quality:
            mask = block.column(f"{name}.filter").is_valid()
            failed[name].append(block.filter(mask).select(
                ["idx", *(f"{name}.{k}" for k in ("filter", "value", "threshold", "bound",
                                                  "detail"))]))  # fmt: skip
    for b in sorted(pending):
        _count_and_stage(intake, tables, *pending[b])
    intake.seconds["ray_prepare"] += time.perf_counter() - begin
    return prepared, {name: pa.concat_tables(parts) for name, parts in failed.items() if parts}


class _Batches:
    """The local intake's batch number of each record, from the records' sizes in order."""

    def __init__(self, records: int, chars: int) -> None:
        self.limit_records, self.limit_chars = records, chars
        self.number, self.records, self.chars = 0, 0, 0

    def of(self, sizes: np.ndarray) -> np.ndarray:
        out = np.empty(len(sizes), np.int64)
        for i, size in enumerate(sizes.tolist()):
            out[i] = self.number
            self.records += 1
            self.chars += size
            if self.records >= self.limit_records or self.chars >= self.limit_chars:
                self.number, self.records, self.chars = self.number + 1, 0, 0
        return out


def _by_batch(
    batch: np.ndarray, rows: list[tuple[str, str, str, int]], ids: list[str]
) -> Iterator[tuple[int, list[tuple[str, str, str, int]]]]:
    """The redaction rows of a block split by the intake batch their record came from."""
    batch_of = dict(zip(ids, batch.tolist(), strict=True))
    groups: dict[int, list[tuple[str, str, str, int]]] = {}
    for row in rows:
        groups.setdefault(batch_of[row[0]], []).append(row)
    yield from groups.items()


def _count_and_stage(
    intake: Intake, tables: Any, secret_rows: list[Any], pii_rows: list[Any]
) -> None:
    for _, _, kind, count in secret_rows:
        intake.counts.secrets[kind] += count
    for _, _, kind, count in pii_rows:
        intake.counts.pii[kind] += count
    intake.staging.append("pii_redactions", tables.pii_table(secret_rows + pii_rows))


def run_steps_on_ray(
    ray: Any,
    steps: Mapping[str, Step],
    prepared: Any,
    failed: Mapping[str, pa.Table],
    rank: np.ndarray,
    fetch: Any,
    settings: RaySettings,
    progress: bool = False,
) -> list[StepResult]:
    """The local `run_steps`, each step's decision made on Ray (exact, near, quality) or,
    for a step that keeps nothing while streaming (semantic), by the step on the driver."""
    n = len(rank)

    def decide(name: str, step: Step, survivors: Survivors) -> Decisions:
        alive = survivors.idx
        mask = np.zeros(n, bool)
        mask[alive] = True
        if prepared is None or len(alive) == 0:
            if not isinstance(step, ExactDedup | NearDedup | QualityFilter):
                return step.decide(survivors)
            return _none(step, name)
        if isinstance(step, QualityFilter):
            return _quality(failed.get(name), name, mask)
        if isinstance(step, ExactDedup):
            return _exact(ray, prepared, name, rank, mask, settings)
        if isinstance(step, NearDedup):
            return _near(ray, prepared, name, step, rank, alive, mask, settings)
        return step.decide(survivors)

    return run_steps(steps, rank, fetch, progress, decide)


def _none(step: Step, name: str) -> Decisions:
    if isinstance(step, QualityFilter):
        return _quality(None, name, np.zeros(0, bool))
    return Decisions.none("exact" if isinstance(step, ExactDedup) else "near")


def _quality(failed: pa.Table | None, name: str, mask: np.ndarray) -> Decisions:
    """The quality step's drops: the failures `prepare` measured, of records still kept."""
    if failed is None or failed.num_rows == 0:
        empty = np.zeros(0)
        return Filtered.of(empty.astype(np.int64), empty, empty, [], [], [])
    idx = failed.column("idx").to_numpy()
    keep = mask[idx]
    rows = failed.filter(pa.array(keep)).sort_by("idx")
    column = rows.column
    return Filtered.of(
        column("idx").to_numpy(), column(f"{name}.value").to_numpy(),
        column(f"{name}.threshold").to_numpy(), column(f"{name}.filter").to_pylist(),
        column(f"{name}.bound").to_pylist(), column(f"{name}.detail").to_pylist(),
    )  # fmt: skip


def _exact(
    ray: Any, prepared: Any, name: str, rank: np.ndarray, mask: np.ndarray, s: RaySettings
) -> Decisions:
    """Copies by a groupby on the hash's partition, the local `exact_pairs` per group."""
    parts = s.parts(int(mask.sum()))
    rows = (
        prepared.select_columns(["idx", f"{name}.h0", f"{name}.h1"])
        .map_batches(ray_ops.with_rank, fn_kwargs={"rank": rank, "alive": mask},
                     batch_format="pyarrow")
        .map_batches(ray_ops.exact_parts, fn_kwargs={"name": name, "parts": keys(parts)},
                     batch_format="pyarrow")
    )  # fmt: skip
    rows = grouped(rows, parts).map_groups(ray_ops.exact_group, fn_kwargs={"name": name},
                                           batch_format="pyarrow")  # fmt: skip
    pairs = _collect(rows, ["idx", "of_idx"]).sort_by("idx")
    removed = pairs.column("idx").to_numpy()
    return Decisions(removed, pairs.column("of_idx").to_numpy(), np.ones(len(removed)), "exact")


def _near(
    ray: Any,
    prepared: Any,
    name: str,
    step: NearDedup,
    rank: np.ndarray,
    alive: np.ndarray,
    mask: np.ndarray,
    s: RaySettings,
) -> Decisions:
    """Candidates from LSH buckets (groupby), verified by true Jaccard, clusters (connected
    components of the verified edges) and the keep policy (a groupby per cluster), all on
    Ray; the driver collects one (removed, survivor, Jaccard) row per near duplicate."""
    settings = step.settings
    if len(alive) < 2:
        return Decisions.none("near")
    parts = s.parts(len(alive))
    bands = (
        prepared.select_columns(["idx", f"{name}.bands"])
        .map_batches(ray_ops.with_rank, fn_kwargs={"rank": rank, "alive": mask},
                     batch_format="pyarrow")
        .map_batches(ray_ops.explode_bands, fn_kwargs={"name": name, "parts": keys(parts)},
                     batch_format="pyarrow")
    )  # fmt: skip
    pairs = (grouped(bands, parts).map_groups(ray_ops.bucket_pairs, batch_format="pyarrow")
             .map_batches(ray_ops.pair_parts, fn_kwargs={"parts": keys(parts)},
                          batch_format="pyarrow"))  # fmt: skip
    candidates = (grouped(pairs, parts).map_groups(ray_ops.unique_pairs, batch_format="pyarrow")
                  .materialize())  # fmt: skip
    texts = prepared.select_columns(["idx", *settings.fields])
    verified = _verify(candidates, texts, settings, settings.threshold, len(mask), s)
    edges = (verified.filter(expr="similarity > 0.0")
             .map_batches(ray_ops.as_edges, batch_format="pyarrow").materialize())  # fmt: skip
    count = edges.count()
    if count == 0:
        return Decisions.none("near")
    edge_parts = s.parts(count)
    stars, _ = components(edges, edge_parts)
    centres = stars.map_batches(ray_ops.keep_parts, fn_kwargs={"parts": keys(edge_parts)},
                                batch_format="pyarrow")  # fmt: skip
    pairs = (grouped(centres, edge_parts)
             .map_groups(ray_ops.keep_policy, fn_kwargs={"rank": rank}, batch_format="pyarrow")
             .materialize())  # fmt: skip
    measured = _verify(pairs, texts, settings, 0.0, len(mask), s)
    sims = _collect(measured, ["left", "right", "similarity"]).sort_by("left")
    return Decisions(sims.column("left").to_numpy(), sims.column("right").to_numpy(),
                     sims.column("similarity").to_numpy(), "near")  # fmt: skip


def keys(parts: int) -> int:
    """The distinct `part` values of a shuffle into `parts` partitions. The sort shuffle cuts
    its input at sampled key boundaries: with only `parts` distinct values the cuts fall
    unevenly and one task can get several partitions' rows; KEYS_PER_PARTITION values per
    partition spread the rows evenly (each value is still one group for `map_groups`)."""
    return parts * KEYS_PER_PARTITION


KEYS_PER_PARTITION = 32


def grouped(ds: Any, parts: int) -> Any:
    """`ds` grouped by `part` into `parts` partitions. The hash shuffle takes the count as
    its `num_partitions`; the sort shuffle ignores that and makes one partition per input
    block, and a union adds its inputs' blocks up, so their count would grow with the data
    and a shuffle's map x reduce pieces with its square. The blocks are first split or
    combined, without a shuffle, into `parts`."""
    from ray.data.context import DataContext, ShuffleStrategy

    if DataContext.get_current().shuffle_strategy != ShuffleStrategy.HASH_SHUFFLE:
        ds = ds.repartition(parts)
    return ds.groupby("part", num_partitions=parts)


MAX_ROUNDS = 200  # large-star / small-star needs O(log^2 n) rounds; this is far beyond


def components(edges: Any, parts: int) -> tuple[Any, int]:
    """The connected components of an edge dataset (a, b) as Ray Data operations: rounds of
    large-star then small-star (each a groupby on a partition of one endpoint) until a
    round changes nothing. Returns the stars, one edge (a leaf, b its component's smallest
    idx) per clustered record but the smallest (repeats possible), and the rounds run."""
    for rounds in range(1, MAX_ROUNDS + 1):
        both = edges.map_batches(ray_ops.star_rows,
                                 fn_kwargs={"parts": keys(parts), "both": True},
                                 batch_format="pyarrow")  # fmt: skip
        large = (grouped(both, parts).map_groups(ray_ops.large_star, batch_format="pyarrow")
                 .map_batches(ray_ops.star_rows, fn_kwargs={"parts": keys(parts), "both": False},
                              batch_format="pyarrow"))  # fmt: skip
        edges = (grouped(large, parts).map_groups(ray_ops.small_star, batch_format="pyarrow")
                 .materialize())  # fmt: skip
        flags = edges.map_batches(ray_ops.any_changed, batch_format="pyarrow", batch_size=None)
        if not any(row["changed"] for row in flags.take_all()):  # one row per block
            return edges, rounds
    raise RuntimeError(f"ray engine: connected components did not settle in {MAX_ROUNDS} rounds")


def _verify(pairs: Any, texts: Any, settings: Any, threshold: float, records: int,
            s: RaySettings) -> Any:  # fmt: skip
    """Both records' texts attached to each pair (`_attach`, twice), then the Jaccard kernel.
    `pairs` is materialized: one pass over it first marks the records it names on each side,
    so only their texts go through the shuffles, not every record's (a semi-join)."""
    fields = list(settings.fields)
    left, right, count = _ends(pairs, records)
    joined = _attach(pairs, texts, "left", fields, [], left, s.parts(count + int(left.sum())))
    joined = _attach(joined, texts, "right", fields, [f"l.{f}" for f in fields], right,
                     s.parts(count + int(right.sum())))  # fmt: skip
    return joined.map_batches(ray_ops.jaccard, fn_kwargs={"settings": settings,
                                                         "threshold": threshold},
                              batch_format="pyarrow")  # fmt: skip


def _ends(pairs: Any, records: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Masks of the records that are some pair's left and some pair's right, and the pair
    count, streamed block by block to the driver (one byte per record, beside the rank)."""
    left, right, count = np.zeros(records, bool), np.zeros(records, bool), 0
    for block in pairs.select_columns(["left", "right"]).iter_batches(batch_format="numpy",
                                                                      batch_size=None):  # fmt: skip
        left[block["left"]] = True
        right[block["right"]] = True
        count += len(block["left"])
    return left, right, count


def _attach(pairs: Any, texts: Any, side: str, fields: list[str], carry: list[str],
            needed: np.ndarray, parts: int) -> Any:  # fmt: skip
    """The pairs with their `side` record's texts: a groupby on a partition of that record
    over the pairs and the `needed` records' texts together (`ray_ops.attach`), not a hash
    join, whose aggregator actors would each hold a share of every text."""
    kwargs = {"fields": fields, "parts": keys(parts), "carry": carry}
    rows = texts.map_batches(ray_ops.text_rows, fn_kwargs={**kwargs, "needed": needed},
                             batch_format="pyarrow").union(
        pairs.map_batches(ray_ops.pair_rows, fn_kwargs={**kwargs, "side": side},
                          batch_format="pyarrow"))  # fmt: skip
    return grouped(rows, parts).map_groups(
        ray_ops.attach, fn_kwargs={"side": side, "fields": fields, "carry": carry},
        batch_format="pyarrow")  # fmt: skip


def _collect(ds: Any, names: list[str]) -> pa.Table:
    """A (small) dataset's rows on the driver."""
    blocks = list(ds.iter_batches(batch_format="pyarrow", batch_size=None))
    blocks = [b.select(names) for b in blocks if b.num_rows]
    if not blocks:
        return pa.table({n: pa.array([], pa.int64()) for n in names})
    return pa.concat_tables(blocks)
