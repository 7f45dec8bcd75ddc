"""Fuzzed input never crashes the stage and every row is accounted for (hypothesis)."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import compose
from pipeline.dedup import tables
from pipeline.dedup.collect import collect
from pipeline.dedup.validate import FieldMap, ValidateSettings
from pipeline.io.readers import ReadStats, dataset_files, read_dataset
from pipeline.stages.dedup import run
from pipeline.store.staging import STAGED_SCHEMA

LIMITS = ValidateSettings(max_field_chars=300, max_line_bytes=2000)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["2024-05-01T10:00:00Z", "2024-13-45", "real", "synthetic", "", "\x00"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
huge = st.integers(min_value=301, max_value=3000).map(lambda n: "x" * n)
records = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=8), st.integers(0, 50), scalars),
        "prompt": st.one_of(st.text(max_size=60), huge, values),
        "response": st.one_of(st.text(max_size=60), huge, values),
        "quality": values,
        "turn": values,
        "created_at": values,
        "tags": values,
        "origin": values,
        "user_id": values,
        "metadata": st.one_of(values, st.dictionaries(st.text(max_size=5), values, max_size=3)),
        "extra": values,
    },
)


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["record", "record", "record", "bytes", "truncated", "text"]))
    if kind == "bytes":
        line = draw(st.binary(max_size=80)).replace(b"\n", b"")
    elif kind == "text":
        line = draw(st.text(max_size=80)).replace("\n", "").encode("utf-8", "surrogatepass")
    else:
        line = json.dumps(draw(records), ensure_ascii=draw(st.booleans())).encode(
            "utf-8", "surrogatepass"
        )
        if kind == "truncated":
            line = line[: draw(st.integers(0, max(0, len(line) - 1)))]
    if draw(st.booleans()):
        line = b"\xef\xbb\xbf" + line
    return line + draw(st.sampled_from([b"\n", b"\r\n"]))


datasets = st.lists(lines(), max_size=25)


def _write(root: Path, body: list[bytes], fmt: str) -> None:
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        (raw / "a.jsonl").write_bytes(b"".join(body))
    elif fmt == "gz":
        (raw / "a.jsonl.gz").write_bytes(gzip.compress(b"".join(body), mtime=0))
    elif fmt == "csv":  # the same bytes as CSV rows: stray quotes, wrong field counts
        (raw / "a.csv").write_bytes(b"prompt,quality,tags\r\n" + b"".join(body))
    else:  # a JSON array whose elements are the same (possibly broken) texts
        (raw / "a.json").write_bytes(b"[" + b",".join(x.strip() for x in body) + b"]")


def _check_core(root: Path) -> None:
    stats = ReadStats()
    fields = FieldMap.from_cfg({"name": "fuzz"})
    got = collect(read_dataset(dataset_files(root / "raw"), 2000, stats), fields, LIMITS)
    assert got.input_records == len(got.records) + len(got.rejections)
    # The Arrow tables the stage stages accept whatever survived validation.
    columns = {**tables.record_columns(got.records), "idx": list(range(len(got.records)))}
    pa.table(columns, schema=STAGED_SCHEMA)
    tables.rejected_table(got.rejections)
    for record in got.records:
        record.prompt.encode("utf-8")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=datasets, fmt=st.sampled_from(["jsonl", "gz", "json", "csv"]))
def test_fuzzed_rows_are_all_accounted_for(body: list[bytes], fmt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _write(Path(tmp), body, fmt)
        _check_core(Path(tmp))


@pytest.fixture(scope="module")
def base_cfg(tmp_path_factory: pytest.TempPathFactory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    return compose(
        [
            f"tracking.uri={uri}",
            "dedup.validate.max_field_chars=300",
            "dedup.validate.max_line_bytes=2000",
        ]
    )


@pytest.mark.slow
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(body=datasets, fmt=st.sampled_from(["jsonl", "gz", "json", "csv"]))
def test_fuzzed_input_through_the_whole_stage(base_cfg, body: list[bytes], fmt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write(root, body, fmt)
        cfg = base_cfg.copy()
        cfg.data.path = str(root / "raw")
        report = run(cfg, root)
        assert report["accounting"]["holds"]
        assert report["input_records"] == report["input_lines"] - report["blank_lines"]
        assert (root / "data" / "dedup" / "records.parquet").exists()
