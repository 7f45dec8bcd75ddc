"""Reading and validation of the dedup stage on Ray Data (`dedup.engine=ray`).

The input files become a dataset of read units: a whole file, or, for an uncompressed JSON
Lines file larger than `RANGE_BYTES`, byte ranges that each end just after a line feed (a
first `map_batches` counts each range's line breaks, so every range knows the number of its
first line). One task per unit (`parse`) reads it with the local engine's own reader
(`pipeline.io.readers`), and validates it with the local `Collector`, shape reader, erasure
list, feedback and the `Intake`'s own record and rejection handling (`UnitIntake`); nothing
is re-implemented. Each unit gives, in one dataset (`_kind`): its records (0), one claim per
id it accepted (1), and one row (2) carrying what the stage stages and counts from it
(rejections, preferences, counts, an error).

Ids must be unique across the whole input, and a duplicate names the line of the first use:
a groupby on a partition of the rid finds the ids claimed by more than one unit. Usually
none are; otherwise the units holding a later claim are read again with the first claims
seeded into their collector (`UnitCollector.seed`), which then rejects those rows exactly as
the local engine's single collector does. The driver never sees a record or a claim here,
only the units' side rows.
"""

from __future__ import annotations

import io
import pickle
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import xxhash

from pipeline.dedup.collect import _LINE_BITS, Collector
from pipeline.dedup.intake import Intake, IntakeCounts, IntakeSettings
from pipeline.dedup.policy import policy_columns
from pipeline.dedup.validate import FieldMap, ValidateSettings
from pipeline.io.rows import RawRow, ReadStats
from pipeline.record import RECORD_SCHEMA, Record

# An uncompressed JSON Lines file larger than this is read as byte ranges of about this
# size, one task each (~18k records of ~900 bytes). Other formats are read a file a task.
RANGE_BYTES = 16 * 2**20
RECORD, CLAIM, SIDE = 0, 1, 2  # `_kind` of a parsed row


@dataclass(frozen=True)
class ReadSpec:
    """What a read task needs: the settings the local stream uses, the erasure list and
    feedback (record id -> mean score), and each unit's file name (for seeded claims)."""

    fields: FieldMap
    validate: ValidateSettings
    format: str
    intake: IntakeSettings
    erasures: frozenset[str]
    feedback: Mapping[str, float]
    rels: tuple[str, ...]  # unit -> its file's relative name


def policy_keys(settings: IntakeSettings) -> int:
    """How many keep-policy sort keys a record carries (`policy.<i>` columns)."""
    return len(policy_columns([], settings.keep_policy, {}))


def parsed_schema(keys: int) -> pa.Schema:
    """Every parsed row: a record's fields (null on other kinds), where it came from, its
    keep-policy keys, and the kind."""
    fields = [f.with_nullable(True) for f in RECORD_SCHEMA]
    fields += [pa.field("_unit", pa.int32()), pa.field("_seq", pa.int64()),
               pa.field("_line", pa.int64()), pa.field("_chars", pa.int64()),
               *(pa.field(f"policy.{i}", pa.float64()) for i in range(keys)),
               pa.field("_kind", pa.int8()), pa.field("_side", pa.binary())]  # fmt: skip
    return pa.schema(fields)


# ---------------------------------------------------------------------------- units


def plan_units(files: list[tuple[Path, str]], range_bytes: int | None = None) -> list[dict]:
    """The read units of the input files, in input order: (file, rel, start, end, split);
    `end` -1 is the whole file. Only the split points are read here (a few bytes each)."""
    range_bytes = range_bytes or RANGE_BYTES
    units: list[dict] = []
    for path, rel in files:
        name = path.name.lower()
        size = path.stat().st_size if name.endswith(".jsonl") else 0
        cuts = _cuts(path, size, range_bytes) if size > range_bytes else []
        bounds = list(zip([0, *cuts], [*cuts, size], strict=True)) if cuts else [(0, -1)]
        for start, end in bounds:
            units.append({"unit": len(units), "file": str(path), "rel": rel, "start": start,
                          "end": end, "split": bool(cuts), "first_line": 1,
                          "seeds": b""})  # fmt: skip
    return units


def _cuts(path: Path, size: int, step: int) -> list[int]:
    """Offsets just after a line feed, about `step` bytes apart."""
    cuts: list[int] = []
    with path.open("rb") as fh:
        target = step
        while target < size:
            fh.seek(target - 1)
            pos = target - 1
            while True:
                piece = fh.read(1 << 16)
                if not piece:
                    return cuts
                found = piece.find(b"\n")
                if found >= 0:
                    pos += found + 1
                    break
                pos += len(piece)
            if pos >= size:
                return cuts
            cuts.append(pos)
            target = pos + step
    return cuts


def count_breaks(batch: pa.Table) -> pa.Table:
    """The line breaks (LF, CRLF, lone CR: as `read_jsonl` counts lines) of each byte range;
    a range ends just after a LF, so no CRLF straddles two."""
    counts = []
    for row in batch.to_pylist():
        with open(row["file"], "rb") as fh:
            fh.seek(row["start"])
            data = fh.read(row["end"] - row["start"])
        counts.append(data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n"))
    return pa.table({"unit": batch.column("unit"), "breaks": pa.array(counts, pa.int64())})


class _Range(io.RawIOBase):
    """Bytes [start, end) of an open file."""

    def __init__(self, fh: Any, start: int, end: int) -> None:
        fh.seek(start)
        self.fh, self.left = fh, end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            return 0
        n = self.fh.readinto(memoryview(buffer)[: min(len(buffer), self.left)])
        self.left -= n or 0
        return n or 0


def _rows(unit: Mapping[str, Any], limit: int, stats: ReadStats) -> Iterator[RawRow]:
    """The unit's rows from the local readers, numbered as in the whole file."""
    from pipeline.io.json_rows import read_jsonl
    from pipeline.io.readers import read_file

    if not unit["split"]:
        yield from read_file(Path(unit["file"]), unit["rel"], limit, stats)
        return
    shift = unit["first_line"] - 1
    with open(unit["file"], "rb") as raw:
        fh = io.BufferedReader(_Range(raw, unit["start"], unit["end"]), 1 << 20)
        for row in read_jsonl(fh, unit["rel"], limit, stats):
            row.line += shift
            yield row


# ---------------------------------------------------------------------------- parse


class UnitCollector(Collector):
    """The local collector over one unit, which also lists the ids it accepted (claims) and
    can be told of ids a unit before it used first (`seed`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claims: list[tuple[int, str, int]] = []  # (rid, id, line) in input order
        self.first_ids: dict[int, str] = {}

    def seed(self, rid: int, record_id: str, file: str, line: int) -> None:
        """`record_id` (rid) was first used at file:line, before this unit."""
        check = xxhash.xxh32_intdigest(record_id.encode("utf-8"))
        number = self._file_numbers.setdefault(file, len(self._file_numbers))
        self._first[rid] = check << 64 | number << _LINE_BITS | line
        self.first_ids[rid] = record_id

    def _accept(self, row: RawRow, values: Mapping[str, Any], mapping: FieldMap) -> Any:
        out = super()._accept(row, values, mapping)
        if isinstance(out, Record):
            self.claims.append((out.rid, out.id, row.line))
            self.first_ids.setdefault(out.rid, out.id)
        return out


class _Sink:
    """What a unit's intake stages, kept for the unit's output rows."""

    def __init__(self) -> None:
        self.tables: dict[str, list[pa.Table]] = {"rejected": [], "preferences": []}
        self.first_ids: dict[int, str] = {}

    def append(self, name: str, rows: pa.Table) -> None:
        if rows.num_rows:
            self.tables[name].append(rows)

    def first_id(self, rid: int) -> str | None:
        return self.first_ids.get(rid)


class UnitIntake(Intake):
    """The local intake over one unit: erasure, feedback, rejections (redacted) and
    preferences as locally; each batch of records is kept as a table (with its keep-policy
    keys and pre-redaction size) instead of being redacted and staged (`prepare` redacts on
    the workers, the driver stages)."""

    def __init__(self, *args: Any, unit: int, keys: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unit, self.keys = unit, keys
        self.blocks: list[pa.Table] = []

    def _flush(self) -> None:
        from pipeline.dedup import tables

        batch, self._records, self._record_chars = self._records, [], 0
        if not batch:
            return
        start, n = self.counts.staged, len(batch)
        columns: dict[str, Any] = tables.record_columns(batch)
        columns["_unit"] = pa.array(np.full(n, self.unit, np.int32))
        columns["_seq"] = pa.array(np.arange(start, start + n, dtype=np.int64))
        columns["_chars"] = [len(r.prompt) + len(r.response or "") for r in batch]
        keys = policy_columns(batch, self.settings.keep_policy, self.feedback)
        for i, key in enumerate(keys):
            columns[f"policy.{i}"] = pa.array(key.astype(np.float64))
        columns["_kind"] = pa.array(np.full(n, RECORD, np.int8))
        self.blocks.append(_conform(columns, n, self.keys))
        self.counts.staged += n


def _conform(columns: Mapping[str, Any], n: int, keys: int) -> pa.Table:
    schema = parsed_schema(keys)
    arrays = []
    for f in schema:
        value = columns.get(f.name)
        arrays.append(pa.nulls(n, f.type) if value is None else pa.array(value, f.type)
                      if not isinstance(value, pa.Array) else value.cast(f.type))  # fmt: skip
    return pa.Table.from_arrays(arrays, schema=schema)


def parse(batch: pa.Table, spec: ReadSpec) -> Iterator[pa.Table]:
    """Read and validate each unit of the batch (`map_batches`, one unit a batch): its record
    blocks, its claims and its side row (see the module's docstring)."""
    for unit in batch.to_pylist():
        yield from _parse_unit(unit, spec)


def _parse_unit(unit: Mapping[str, Any], spec: ReadSpec) -> Iterator[pa.Table]:
    from pipeline.dedup.shapes import ShapeReader
    from pipeline.dedup.userid import UserIdReader

    keys = policy_keys(spec.intake)
    sink, stats, seconds = _Sink(), ReadStats(), Counter[str]()
    intake = UnitIntake(spec.intake, {}, sink, spec.feedback, spec.erasures, seconds,
                        unit=unit["unit"], keys=keys)  # fmt: skip
    collector = UnitCollector(spec.fields, spec.validate, ShapeReader(spec.format, spec.fields),
                              intake.first_id)  # fmt: skip
    sink.first_ids = collector.first_ids
    for rid, record_id, first_unit, line in pickle.loads(unit["seeds"]) if unit["seeds"] else ():
        collector.seed(rid, record_id, spec.rels[first_unit], line)
    error = None
    try:
        intake.consume(_rows(unit, spec.validate.max_line_bytes, stats), collector,
                       UserIdReader(spec.fields))  # fmt: skip
    except Exception as exc:  # raised on the driver, as the local engine would have
        error = _picklable(exc)
    yield from intake.blocks
    if collector.claims:
        rid, ids, line = zip(*collector.claims, strict=True)
        n = len(rid)
        yield _conform({"rid": pa.array(rid, pa.int64()), "id": list(ids),
                        "_line": pa.array(line, pa.int64()),
                        "_unit": pa.array(np.full(n, unit["unit"], np.int32)),
                        "_kind": pa.array(np.full(n, CLAIM, np.int8))}, n, keys)  # fmt: skip
    side = {"counts": intake.counts, "lines": stats.lines, "blank": stats.blank,
            "rejected": _concat(sink.tables["rejected"]),
            "preferences": _concat(sink.tables["preferences"]), "error": error}  # fmt: skip
    yield _conform({"_unit": pa.array([unit["unit"]], pa.int32()),
                    "_kind": pa.array([SIDE], pa.int8()),
                    "_side": pa.array([pickle.dumps(side)], pa.binary())}, 1, keys)  # fmt: skip


def _concat(parts: list[pa.Table]) -> pa.Table | None:
    return pa.concat_tables(parts) if parts else None


def _picklable(exc: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


# ------------------------------------------------------------------- claims across units


def claim_parts(table: pa.Table, parts: int) -> pa.Table:
    """A unit's claims with the partition of their rid."""
    from pipeline.dedup.ray_ops import part_of

    return table.append_column("part", pa.array(part_of(table.column("rid").to_numpy(), parts)))


def later_claims(table: pa.Table) -> pa.Table:
    """For each rid claimed by more than one unit, one row per later unit: the first claim
    (its id, unit and line) that unit's collector must be seeded with."""
    rid = table.column("rid").to_numpy()
    unit = table.column("_unit").to_numpy()
    order = np.lexsort((unit, rid))
    rid, unit = rid[order], unit[order]
    first = np.ones(len(rid), bool)
    first[1:] = rid[1:] != rid[:-1]
    owner = order[first][np.cumsum(first) - 1]  # each row's rid's first claim (row number)
    later = ~first
    owner_of = owner[later]
    return pa.table({
        "unit": pa.array(unit[later], pa.int32()),
        "rid": pa.array(rid[later], pa.int64()),
        "id": table.column("id").take(pa.array(owner_of, pa.int64())).combine_chunks(),
        "first_unit": pa.array(table.column("_unit").to_numpy()[owner_of], pa.int32()),
        "line": pa.array(table.column("_line").to_numpy()[owner_of], pa.int64()),
    })  # fmt: skip


# ---------------------------------------------------------------------------- driver


@dataclass
class UnitSide:
    """What one unit gave the driver."""

    counts: IntakeCounts
    lines: int
    blank: int
    rejected: pa.Table | None
    preferences: pa.Table | None
    error: Exception | None


def read_units(
    ray: Any, units: list[dict], spec: ReadSpec, parts_for: Any
) -> tuple[Any, list[UnitSide]]:
    """Every unit read and validated on Ray: the parsed dataset (materialized, in unit
    order) and each unit's side row, in unit order. `parts_for(n)`: the shuffle partitions
    for n rows."""
    _number_lines(ray, units)
    parsed = _parse(ray, units, spec)
    if len(units) > 1:
        seeds = _seeds(parsed, parts_for)
        if seeds:
            for unit in units:
                unit["seeds"] = pickle.dumps(seeds.get(unit["unit"], []))
            parsed = _parse(ray, units, spec)
    sides: dict[int, UnitSide] = {}
    rows = parsed.filter(expr=f"_kind == {SIDE}").select_columns(["_unit", "_side"])
    for block in rows.iter_batches(batch_format="pyarrow", batch_size=None):
        for unit, side in zip(block.column("_unit").to_pylist(),
                              block.column("_side").to_pylist(), strict=True):  # fmt: skip
            sides[unit] = UnitSide(**pickle.loads(side))
    return parsed, [sides[u["unit"]] for u in units]


def _number_lines(ray: Any, units: list[dict]) -> None:
    """Each byte range's first line number, from the line breaks of the ranges before it."""
    split = [u for u in units if u["split"]]
    if not split:
        return
    items = [{"unit": u["unit"], "file": u["file"], "start": u["start"], "end": u["end"]}
             for u in split]  # fmt: skip
    counted = (ray.data.from_items(items, override_num_blocks=len(items))
               .map_batches(count_breaks, batch_format="pyarrow", batch_size=None))  # fmt: skip
    breaks = {row["unit"]: row["breaks"] for row in counted.take_all()}
    line = {}
    for u in split:
        line.setdefault(u["file"], 1)
        u["first_line"] = line[u["file"]]
        line[u["file"]] += breaks[u["unit"]]


def _parse(ray: Any, units: list[dict], spec: ReadSpec) -> Any:
    ds = ray.data.from_items(units, override_num_blocks=len(units))
    return ds.map_batches(parse, fn_kwargs={"spec": spec}, batch_format="pyarrow",
                          batch_size=1).materialize()  # fmt: skip


def _seeds(parsed: Any, parts_for: Any) -> dict[int, list[tuple[int, str, int, int]]]:
    """Per unit, the claims of units before it on the rids it claims too."""
    from pipeline.dedup.ray_engine import grouped, keys

    claims = parsed.filter(expr=f"_kind == {CLAIM}").select_columns(
        ["rid", "id", "_unit", "_line"])  # fmt: skip
    parts = parts_for(claims.count())
    keyed = claims.map_batches(claim_parts, fn_kwargs={"parts": keys(parts)},
                               batch_format="pyarrow")  # fmt: skip
    later = grouped(keyed, parts).map_groups(later_claims, batch_format="pyarrow")
    seeds: dict[int, list[tuple[int, str, int, int]]] = {}
    for block in later.iter_batches(batch_format="pyarrow", batch_size=None):
        for row in block.to_pylist():
            seeds.setdefault(row["unit"], []).append(
                (row["rid"], row["id"], row["first_unit"], row["line"]))  # fmt: skip
    return seeds


def merge_counts(total: IntakeCounts, part: IntakeCounts) -> None:
    """Add one unit's intake counts to the run's."""
    for name in ("input_records", "staged", "erased", "from_feedback", "preferences", "chars"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    for name in ("rejected", "rows_by_shape", "records_by_shape"):
        getattr(total, name).update(getattr(part, name))
