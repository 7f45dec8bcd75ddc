"""The Ray engine's reading (`pipeline/dedup/ray_read.py`) without a cluster: byte ranges
give the rows the whole-file reader gives, a read task's side row and claims, ids claimed by
several units, and the partition count that grows with the input."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline.config import compose
from pipeline.dedup import ray_read
from pipeline.dedup.intake import IntakeSettings
from pipeline.dedup.validate import FieldMap, ValidateSettings
from pipeline.io.readers import read_file
from pipeline.io.rows import ReadStats


def _rows_of(row: object) -> tuple:
    return (row.file, row.line, row.raw, row.value, row.reason, row.detail)


def _hostile_jsonl(path: Path) -> None:
    """Every line-break form, blank lines, a BOM mid-file, an oversize and a malformed line,
    invalid UTF-8, and no final line break."""
    parts = [b'\xef\xbb\xbf{"id": "a", "prompt": "first"}\n']
    for i in range(200):
        record = json.dumps({"id": f"r{i}", "prompt": "w " * (i % 37)}).encode()
        parts.append(record + (b"\n", b"\r\n", b"\r")[i % 3])
        if i % 17 == 0:
            parts.append(b"\n   \r\n")
        if i % 29 == 0:
            parts.append(b'{"id": "bad", "prompt": \xff\xfe}\n{"unfinished": \n')
        if i == 100:
            parts.append(b'\xef\xbb\xbf{"id": "big", "prompt": "' + b"x" * 3000 + b'"}\n')
    parts.append(b'{"id": "last", "prompt": "no line break at the end"}')
    path.write_bytes(b"".join(parts))


@pytest.mark.parametrize("range_bytes", [97, 500, 4096])
def test_byte_ranges_read_the_rows_of_the_whole_file(tmp_path: Path, range_bytes: int) -> None:
    path = tmp_path / "in.jsonl"
    _hostile_jsonl(path)
    whole_stats = ReadStats()
    whole = [_rows_of(r) for r in read_file(path, "in.jsonl", 2000, whole_stats)]
    units = ray_read.plan_units([(path, "in.jsonl")], range_bytes)
    assert len(units) > 3 and all(u["split"] for u in units)
    assert [u["start"] for u in units[1:]] == [u["end"] for u in units[:-1]]
    breaks = ray_read.count_breaks(pa.Table.from_pylist(
        [{k: u[k] for k in ("unit", "file", "start", "end")} for u in units]))  # fmt: skip
    line = 1
    for unit, count in zip(units, breaks.column("breaks").to_pylist(), strict=True):
        unit["first_line"] = line
        line += count
    stats = ReadStats()
    pieces = [_rows_of(r) for u in units for r in ray_read._rows(u, 2000, stats)]
    assert pieces == whole
    assert (stats.lines, stats.blank) == (whole_stats.lines, whole_stats.blank)
    reasons = {r[4] for r in whole}
    assert {"oversize_line", "invalid_utf8", "invalid_json"} <= reasons


def test_small_and_compressed_files_are_one_unit(tmp_path: Path) -> None:
    small, packed = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"
    small.write_text('{"id": "x", "prompt": "p"}\n')
    packed.write_bytes(gzip.compress(b'{"id": "y", "prompt": "q"}\n' * 1000))
    units = ray_read.plan_units([(small, "a.jsonl"), (packed, "b.jsonl.gz")], 64)
    assert [(u["rel"], u["split"], u["end"]) for u in units] == [
        ("a.jsonl", False, -1), ("b.jsonl.gz", False, -1)]  # fmt: skip


def _spec(rels: tuple[str, ...]) -> ray_read.ReadSpec:
    cfg = compose([])
    intake = IntakeSettings(tuple(cfg.dedup.keep_policy), True, 3, None, None)
    return ray_read.ReadSpec(FieldMap.from_cfg(cfg.data), ValidateSettings.from_cfg(
        cfg.dedup.validate), "auto", intake, frozenset(), {"b": 1.0}, rels)  # fmt: skip


def _parse(path: Path, seeds: list | None = None) -> list[pa.Table]:
    unit = ray_read.plan_units([(path, path.name)])[0]
    unit["seeds"] = pickle.dumps(seeds) if seeds else b""
    spec = _spec(("first.jsonl", path.name))
    return list(ray_read.parse(pa.Table.from_pylist([unit]), spec))


def test_a_unit_gives_records_claims_and_its_side_row(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    rows = [{"id": "a", "prompt": "one"}, {"id": "b", "prompt": "two"}, {"id": "a", "prompt": "3"},
            {"id": "c"}, {"id": "d", "prompt": "four", "quality": 2}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{oops\n")
    out = pa.concat_tables(_parse(path))
    kinds = out.column("_kind").to_pylist()
    records = out.filter(pa.compute.equal(out.column("_kind"), ray_read.RECORD))
    assert records.column("id").to_pylist() == ["a", "b", "d"]
    assert records.column("_seq").to_pylist() == [0, 1, 2]  # three batches of at most 3
    assert records.column("quality").to_pylist() == [None, 5.0, 2.0]  # b's from its feedback
    claims = out.filter(pa.compute.equal(out.column("_kind"), ray_read.CLAIM))
    assert claims.column("_line").to_pylist() == [1, 2, 5]
    assert kinds.count(ray_read.SIDE) == 1
    side = pickle.loads(out.column("_side")[len(kinds) - 1].as_py())
    assert side["error"] is None and side["lines"] == 6
    assert side["counts"].staged == 3 and side["counts"].from_feedback == 1
    assert side["rejected"].column("reason").to_pylist() == [
        "duplicate_id", "unknown_shape", "invalid_json"]  # fmt: skip
    assert "in.jsonl:3: id 'a' already used at in.jsonl:1" in side["rejected"]["detail"][0].as_py()


def test_a_seeded_id_is_rejected_naming_the_first_file(tmp_path: Path) -> None:
    from pipeline.dedup.ids import rid_of

    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "prompt": "one"}\n{"id": "a", "prompt": "again"}\n')
    out = pa.concat_tables(_parse(path, [(rid_of("a"), "a", 0, 7)]))
    side = pickle.loads(out.filter(pa.compute.equal(out.column("_kind"), ray_read.SIDE))
                        .column("_side")[0].as_py())  # fmt: skip
    assert side["counts"].staged == 0
    details = side["rejected"].column("detail").to_pylist()
    assert details == ["in.jsonl:1: id 'a' already used at first.jsonl:7",
                       "in.jsonl:2: id 'a' already used at first.jsonl:7"]  # fmt: skip


def test_a_read_task_hands_its_error_to_the_driver(tmp_path: Path) -> None:
    path = tmp_path / "gone.jsonl"
    path.write_text('{"id": "a", "prompt": "one"}\n')
    unit = ray_read.plan_units([(path, path.name)])[0]
    path.unlink()
    out = list(ray_read.parse(pa.Table.from_pylist([unit]), _spec((path.name,))))
    side = pickle.loads(out[-1].column("_side")[0].as_py())
    assert isinstance(side["error"], FileNotFoundError)


def test_later_claims_name_the_first_unit() -> None:
    claims = pa.table({"rid": pa.array([5, 7, 5, 9, 5], pa.int64()),
                       "id": ["x", "y", "x2", "z", "x3"],
                       "_unit": pa.array([2, 1, 0, 3, 4], pa.int32()),
                       "_line": pa.array([20, 10, 3, 30, 40], pa.int64())})  # fmt: skip
    later = ray_read.later_claims(claims).to_pylist()
    assert later == [
        {"unit": 2, "rid": 5, "id": "x2", "first_unit": 0, "line": 3},
        {"unit": 4, "rid": 5, "id": "x2", "first_unit": 0, "line": 3},
    ]


def test_partitions_grow_with_the_input() -> None:
    from pipeline.dedup.ray_engine import RaySettings

    scaled = RaySettings.from_cfg({"records_per_partition": 10_000})
    assert [scaled.parts(n) for n in (0, 1, 20_000, 200_000, 1_000_000)] == [1, 1, 2, 20, 100]
    assert RaySettings.from_cfg({"partitions": 8}).parts(1_000_000) == 8
    with pytest.raises(Exception, match="records_per_partition"):
        RaySettings.from_cfg({"records_per_partition": 0})


def test_attach_matches_pairs_to_their_records_texts() -> None:
    from pipeline.dedup import ray_ops

    texts = pa.table({"idx": pa.array([4, 1, 9], pa.int64()), "prompt": ["four", "one", "nine"],
                      "response": ["r4", None, "r9"]})  # fmt: skip
    pairs = pa.table({"left": pa.array([1, 4, 1], pa.int64()),
                      "right": pa.array([9, 9, 7], pa.int64())})  # fmt: skip
    fields = ["prompt", "response"]
    rows = pa.concat_tables([ray_ops.text_rows(texts, fields, 1, []),
                             ray_ops.pair_rows(pairs, "left", fields, 1, [])])  # fmt: skip
    left = ray_ops.attach(rows, "left", fields, [])
    assert sorted(left.to_pylist(), key=lambda r: (r["left"], r["right"])) == [
        {"left": 1, "right": 7, "l.prompt": "one", "l.response": None},
        {"left": 1, "right": 9, "l.prompt": "one", "l.response": None},
        {"left": 4, "right": 9, "l.prompt": "four", "l.response": "r4"},
    ]
    carry = ["l.prompt", "l.response"]
    rows = pa.concat_tables([ray_ops.text_rows(texts, fields, 1, carry),
                             ray_ops.pair_rows(left, "right", fields, 1, carry)])  # fmt: skip
    both = sorted(ray_ops.attach(rows, "right", fields, carry).to_pylist(),
                  key=lambda r: (r["left"], r["right"]))  # fmt: skip
    # The pair (1, 7) has no record 7: dropped, as by an inner join.
    assert both == [
        {"left": 1, "right": 9, "l.prompt": "one", "l.response": None, "r.prompt": "nine",
         "r.response": "r9"},
        {"left": 4, "right": 9, "l.prompt": "four", "l.response": "r4", "r.prompt": "nine",
         "r.response": "r9"},
    ]  # fmt: skip


def test_text_rows_keep_only_the_records_some_pair_names() -> None:
    from pipeline.dedup import ray_ops

    texts = pa.table({"idx": pa.array([4, 1, 9], pa.int64()), "prompt": ["four", "one", "nine"]})
    needed = np.zeros(10, bool)
    needed[[1, 9]] = True
    rows = ray_ops.text_rows(texts, ["prompt"], 1, [], needed)
    assert rows.column("key").to_pylist() == [1, 9]
    assert rows.column("t.prompt").to_pylist() == ["one", "nine"]
    assert ray_ops.text_rows(texts, ["prompt"], 1, [], np.zeros(10, bool)).num_rows == 0
