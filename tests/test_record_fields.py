"""The record's one field table against a store the dedup stage really built, and the one row
decoder of the store as every reader path (search, the service, `records show`) sees it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from helpers.serve import build_index, build_store

from pipeline.api.app import create_app
from pipeline.config import compose
from pipeline.errors import NotFoundError
from pipeline.record import (
    DUPLICATE_FIELDS,
    FIELD_NAMES,
    FIELDS,
    RESULT_FIELDS,
    USER_FIELDS,
    Record,
    arrow_schema,
    check_fields,
)
from pipeline.sample.write import RECORD_KEYS
from pipeline.search.results import SearchResult
from pipeline.service.keys import create_key
from pipeline.stages.dedup import run
from pipeline.store import annotations, rows
from pipeline.store.db import open_snapshot, snapshot_cursor
from pipeline.store.lookup import StoreReader, get_record, session_turns
from pipeline.store.records import show
from pipeline.store.scope import Scope
from pipeline.store.search import RESULT_COLUMNS, fetch_records

EVERY = Scope.all()  # these tests are about decoding; tests/test_scope.py is about scope
BIG = "99999999999999999999"  # all digits, but past the BIGINT range: an id, never a rid
STAMP = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
INPUT = [
    {"id": "t1", "prompt": "how do I reset my password", "response": "use the link",
     "session_id": "s", "turn": 1, "created_at": "2024-05-01T12:00:00+02:00",
     "tags": ["a"], "metadata": {"k": 1}},
    {"id": "t2", "prompt": "it still does not work", "response": "clear the cookies",
     "session_id": "s", "turn": 2, "created_at": "2024-05-01T10:00:00.250000Z"},
    {"id": "t2-again", "prompt": "It still does NOT work", "response": "clear the cookies",
     "session_id": "s", "turn": 3, "created_at": "2024-06-01T00:00:00Z"},  # t2, later
    {"id": BIG, "prompt": "a record whose id looks like a number", "response": "fine"},
]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/dedup/store.duckdb as the dedup stage writes it from INPUT (~20 s with MLflow's
    sqlite set-up, so the tests that read it are marked slow)."""
    root = tmp_path_factory.mktemp("fields")
    raw = root / "raw" / "a.jsonl"
    raw.parent.mkdir()
    raw.write_text("".join(json.dumps(r) + "\n" for r in INPUT), encoding="utf-8")
    cfg = compose([f"tracking.uri=sqlite:///{root / 'mlflow.db'}", "dedup.pii.enabled=false"])
    cfg.data.path = str(raw.parent)
    report = run(cfg, root)
    assert (report["kept"], report["exact_duplicates"]) == (3, 1)
    return root / "data" / "dedup" / "store.duckdb"


def _columns(path: Path, table: str) -> list[tuple[str, str, bool]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        described = con.execute(f"DESCRIBE {table}").fetchall()
    finally:
        con.close()
    return [(name, kind, null == "YES") for name, kind, null, *_ in described]


@pytest.mark.slow
def test_the_stores_tables_are_the_field_table(store: Path) -> None:
    # DuckDB reports TIMESTAMPTZ as "TIMESTAMP WITH TIME ZONE"; every other type by its name.
    spelled = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}
    for table, table_fields in (("records", FIELDS), ("duplicates", DUPLICATE_FIELDS)):
        wanted = [(f.name, spelled.get(f.sql, f.sql), f.nullable) for f in table_fields]
        assert _columns(store, table) == wanted


@pytest.mark.slow
def test_records_parquet_has_the_derived_arrow_schema(store: Path) -> None:
    written = pq.read_schema(store.parent / "records.parquet")
    assert written.remove_metadata() == arrow_schema()
    assert tuple(arrow_schema().names) == FIELD_NAMES


@pytest.mark.slow
def test_every_reader_returns_the_field_table_columns(store: Path) -> None:
    con = open_snapshot(store)
    try:
        hit = next(iter(fetch_records(snapshot_cursor(con), [_rid(store, "t1")], EVERY).values()))
    finally:
        con.close()
    reader = StoreReader(store)
    try:
        with reader.cursor() as cur:
            looked_up = get_record(cur, "t1", EVERY)
    finally:
        reader.close()
    shown = show(store, "t1")["record"]
    assert RESULT_COLUMNS == RESULT_FIELDS == ("rid", *USER_FIELDS)
    # A hit and `records show` add what later stages learned of a kept record (pipeline/
    # store/annotations.py: anomaly_score, ...), after the record's own fields.
    assert tuple(hit) == (*RESULT_COLUMNS, *annotations.COLUMNS)
    assert tuple(looked_up) == FIELD_NAMES
    assert tuple(shown) == (*FIELD_NAMES, *annotations.COLUMNS)


def test_the_record_dataclass_is_checked_against_the_table() -> None:
    check_fields(Record)

    @dataclass
    class Missing:
        rid: int
        id: str

    with pytest.raises(TypeError, match="Missing fields"):
        check_fields(Missing)


def test_search_hits_and_the_sample_cover_the_record_fields() -> None:
    own = {"score", "scores", "session", "annotations"}  # what a hit adds to the record
    assert {f.name for f in fields(SearchResult)} - own <= set(RESULT_FIELDS)
    # metadata is what the reader gathers from a file's extra columns, not a column itself.
    assert set(RECORD_KEYS) == set(USER_FIELDS) - {"metadata"}


def test_search_start_up_does_not_load_pyarrow() -> None:
    code = (
        "import sys, pipeline.search.api, pipeline.search.results, pipeline.store.search, "
        "pipeline.store.lookup, pipeline.record; print('pyarrow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _rid(store: Path, record_id: str) -> int:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute("SELECT rid FROM records WHERE id = ?", [record_id]).fetchone()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def damaged(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the store in which t2's metadata is not JSON (a hand edit, an old writer)."""
    path = tmp_path_factory.mktemp("damaged") / "store.duckdb"
    path.write_bytes(store.read_bytes())
    con = duckdb.connect(str(path))
    con.execute("UPDATE records SET metadata = '{cut off' WHERE id = 't2'")
    con.close()
    return path


def _every_path(path: Path, record_id: str) -> dict[str, dict]:
    """The record as search hits, the service's lookup and `records show` read it."""
    rid = _rid(path, record_id)
    con = open_snapshot(path)
    try:
        cur = snapshot_cursor(con)
        hit = fetch_records(cur, [rid], EVERY)[rid]
        turn = next(t for t in rows.session_turns(cur, ["s"], EVERY)["s"] if t["id"] == record_id)
    finally:
        con.close()
    reader = StoreReader(path)
    try:
        with reader.cursor() as cur:
            looked_up = get_record(cur, record_id, EVERY)
            scoped_turn = next(t for t in session_turns(cur, "s", EVERY) if t["id"] == record_id)
    finally:
        reader.close()
    shown = show(path, record_id)["record"]
    return {"hit": hit, "turn": turn, "lookup": looked_up, "scoped": scoped_turn, "show": shown}


@pytest.mark.slow
def test_unreadable_metadata_reads_as_raw_text_on_every_path(damaged: Path) -> None:
    for where, record in _every_path(damaged, "t2").items():
        assert record["metadata"] == {"_raw": "{cut off"}, where
    for where, record in _every_path(damaged, "t1").items():
        assert record["metadata"] == {"k": 1}, where


@pytest.mark.slow
def test_created_at_is_one_utc_datetime_on_every_path(store: Path) -> None:
    for record_id, stamp in (("t1", STAMP), ("t2", STAMP.replace(microsecond=250000))):
        for where, record in _every_path(store, record_id).items():
            assert type(record["created_at"]) is datetime, where
            assert record["created_at"] == stamp and record["created_at"].tzinfo == UTC, where
    assert show(store, BIG)["record"]["created_at"] is None


def test_api_time_is_iso_utc_with_microseconds() -> None:
    assert rows.api_time(STAMP) == "2024-05-01T10:00:00.000000+00:00"
    assert rows.api_time(None) is None


@pytest.mark.slow
@pytest.mark.parametrize("key", [BIG, "-" + BIG, "²", "٣", " 1", "1e3"])
def test_a_key_that_is_not_a_bigint_is_only_an_id(store: Path, key: str) -> None:
    assert rows.parse_rid(key) is None
    if key == BIG:
        assert show(store, key)["record"]["id"] == BIG
        return
    with pytest.raises(NotFoundError):
        show(store, key)


@pytest.mark.slow
def test_a_rid_finds_its_record_and_an_id_wins_a_tie(store: Path) -> None:
    rid = _rid(store, "t1")
    assert rows.parse_rid(str(rid)) == rid and rows.parse_rid(str(-(2**63))) == -(2**63)
    assert rows.parse_rid(str(2**63)) is None
    assert show(store, str(rid))["record"]["id"] == "t1"
    reader = StoreReader(store)
    try:
        with reader.cursor() as cur:
            assert get_record(cur, str(rid), EVERY)["id"] == "t1"
            assert get_record(cur, BIG, EVERY)["id"] == BIG
            with pytest.raises(NotFoundError):
                get_record(cur, "-" + BIG, EVERY)
    finally:
        reader.close()


def test_the_http_api_writes_created_at_one_way(tmp_path: Path) -> None:
    config = build_store(tmp_path)
    build_index(config)
    key = create_key(config.paths.service_db, "reader", "reader")[0]
    headers = {"Authorization": f"Bearer {key}"}
    wanted = "2024-05-01T00:00:00.000000+00:00"  # as the service's keys and feedback write it
    with TestClient(create_app(config)) as client:
        record = client.get("/records/a1", headers=headers).json()
        body = {"text": "reset my password", "mode": "keyword", "with_session": True}
        hits = client.post("/search", json=body, headers=headers).json()["results"]
    assert record["record"]["created_at"] == wanted
    assert [t["created_at"] for t in record["session"]][:1] == [wanted]
    assert record["duplicates"][0]["created_at"] == wanted
    hit = next(h for h in hits if h["id"] == "a1")
    assert hit["created_at"] == wanted
    turn = next(t for t in hit["session"] if t["id"] == "a2")
    assert turn["created_at"] == "2024-05-02T00:00:00.000000+00:00"
