"""The erasure list applies before validation: an erased user's rows are never stored, valid
or not, in any format; other rejected rows keep the hash of their user id for erasure."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest
from test_dedup_stage import make_cfg, write_jsonl

from pipeline.dedup.validate import FieldMap
from pipeline.io.rows import RawRow
from pipeline.stages.dedup import run

ZED = "zed-77"  # erased; every one of its rows would otherwise be rejected
TOKEN = "quokkazed"  # a word only zed's rows contain


def _digest(user: str) -> str:
    return hashlib.sha256(user.encode()).hexdigest()


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _raw(root: Path) -> Path:
    raw = root / "raw"
    write_jsonl(
        raw / "a.jsonl",
        [
            {"id": "ok-1", "prompt": "a fine prompt", "user_id": "amy"},
            f'{{"id": "z1", "user_id": "{ZED}", "prompt": "broken {TOKEN}',  # invalid JSON
            {"id": "z2", "user_id": ZED, "prompt": ""},  # empty prompt
            {"id": "z3", "user_id": ZED, "prompt": f"fine {TOKEN}", "quality": "abc"},
            {"id": "z4", "user_id": ZED, "prompt": f"valid {TOKEN} text"},  # would be kept
            {"id": "b1", "user_id": "bea", "prompt": ""},  # rejected, not erased
            '{"id": "b2", "user_id": 42, "prompt": "broken',  # rejected, an integer user id
        ],
    )
    (raw / "b.csv").write_text(
        "id,prompt,user_id,quality\n"
        f"c1,csv {TOKEN} prompt,{ZED},1\n"
        f"c2,too many,{ZED},1,extra\n"  # a malformed CSV row: read by column position
        "c3,another fine prompt,cal,2\n"
        "c4,bad quality,cal,high\n",
        encoding="utf-8",
    )
    return raw


def test_erased_users_rows_never_reach_the_store(tmp_path: Path, mlflow_uri: str) -> None:
    raw = _raw(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "erasures.txt").write_text(_digest(ZED) + "\n")
    report = run(make_cfg(tmp_path, raw, mlflow_uri), tmp_path)
    assert report["erased"] == 6  # z1-z4, c1, c2: rejected or not, they are erased
    assert report["rejected"]["total"] == 3  # b1, b2, c4
    assert report["kept"] == 2 and report["accounting"]["holds"]
    assert report["input_records"] == 11
    store = tmp_path / "data" / "dedup" / "store.duckdb"
    assert TOKEN.encode() not in store.read_bytes()
    assert ZED.encode() not in store.read_bytes()
    assert TOKEN.encode() not in (tmp_path / "data" / "dedup" / "records.parquet").read_bytes()
    con = duckdb.connect(str(store), read_only=True)
    try:
        hashes = dict(con.execute("SELECT record_id, user_hash FROM rejected").fetchall())
    finally:
        con.close()
    # The hash of every readable user id is stored, so `pipeline erase` finds the rows.
    assert hashes == {"b1": _digest("bea"), "a.jsonl:7": _digest("42"), "c4": _digest("cal")}


def test_the_user_id_is_read_from_broken_rows() -> None:
    from pipeline.dedup.userid import UserIdReader

    read = UserIdReader(FieldMap.from_cfg({"fields": {"user_id": "author"}}))
    assert read(RawRow("f", 1, "", {"author": "ann", "user_id": "not-mapped"})) == "ann"
    assert read(RawRow("f", 1, '{"x": 1, "author" : "b\\u00e9a", "prompt": "cut')) == "béa"
    assert read(RawRow("f", 1, b'{"author": 7, \xff')) == "7"
    assert read(RawRow("f", 1, ["c", "dan", "x", "y"], header=["id", "author", "p"])) == "dan"
    assert read(RawRow("f", 1, ["c"], header=["id", "author"])) is None
    assert read(RawRow("f", 1, '{"author": true, "prompt": 1}', [1])) is None
    assert read(RawRow("f", 1, "no json here")) is None
    assert json.dumps(read(RawRow("f", 1, "", {"author": ""}))) == "null"
