"""What later stages learned of a record, where a user reads it: every side file's columns
(anomaly_score, ...) on search hits (Python, CLI --json, HTTP) and on GET /records/{id}; and
on GET /records/{id} why a filtered record was dropped and who corrected a label, when."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import yaml
from fastapi.testclient import TestClient
from helpers.serve import build_index, build_store, record_rows, write_params
from helpers.wait import wait_until
from omegaconf import OmegaConf

from pipeline.api.app import create_app
from pipeline.config import compose
from pipeline.record import RECORD_SCHEMA
from pipeline.service.keys import create_key
from pipeline.store.annotations import ANOMALY, COLUMNS, SCORE
from pipeline.store.db import connect

REPO = Path(__file__).resolve().parent.parent
SCORES = {"a1": 0.9, "a2": 0.1, "m3": 0.2, "b1": 0.7, "b2": 0.3, "c1": 0.4, "n1": 0.5}
FIXED_AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _write_scores(store: Path) -> None:
    """The anomaly stage's side file for the service store's records."""
    path = ANOMALY.under(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"id": list(SCORES), SCORE: list(SCORES.values())})
    frame.to_parquet(path)


def _filter_and_correct(store: Path) -> None:
    """A record the top_ngram filter dropped (alice's) and a reviewed label on b1."""
    row = dict(record_rows()[0], id="f1", rid=424242, prompt="buy buy buy buy", line=77)
    table = pa.Table.from_pylist([row], schema=RECORD_SCHEMA)
    for name, value, kind in (("filter", "top_ngram", pa.string()), ("value", 0.8, pa.float64()),
                              ("threshold", 0.5, pa.float64()), ("bound", "max", pa.string()),
                              ("detail", "prompt n=2", pa.string())):  # fmt: skip
        table = table.append_column(name, pa.array([value], kind))
    con = connect(store, read_only=False)
    try:
        con.register("f", table)
        con.execute("INSERT INTO filtered SELECT * FROM f")
        con.execute(
            "INSERT INTO label_corrections VALUES ('b1', 'support', 'billing', 'correct', "
            "'reviewer-7', ?)",
            [FIXED_AT],
        )
    finally:
        con.close()


@pytest.fixture
def service(tmp_path: Path):
    config = build_store(tmp_path)
    build_index(config)
    _filter_and_correct(config.paths.store)
    db = config.paths.service_db
    keys = {"reader": create_key(db, "reader", "reader")[0]}
    keys["bob"] = create_key(db, "reader", "bob-app", {"user_id": ["bob"]})[0]
    with TestClient(create_app(config)) as client:
        yield client, {k: {"Authorization": f"Bearer {v}"} for k, v in keys.items()}, config


def _hits(client: TestClient, headers: dict[str, str]) -> dict[str, dict]:
    body = {"text": "refund parcel password haiku", "mode": "keyword", "k": 10}
    response = client.post("/search", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return {hit["id"]: hit for hit in response.json()["results"]}


def test_http_hits_and_records_carry_every_side_file_column(service) -> None:
    client, auth, config = service
    before = _hits(client, auth["reader"])
    assert before and all(hit[name] is None for hit in before.values() for name in COLUMNS)
    record = client.get("/records/a1", headers=auth["reader"]).json()["record"]
    assert all(record[name] is None for name in COLUMNS)

    _write_scores(config.paths.store)  # the anomaly stage runs while the service is up
    hits = wait_until(
        lambda: (h := _hits(client, auth["reader"])) and h["b1"][SCORE] is not None and h,
        "the service to read the new side file",
    )
    assert {i: hit[SCORE] for i, hit in hits.items()} == {i: SCORES[i] for i in hits}
    record = wait_until(
        lambda: (
            (r := client.get("/records/a1", headers=auth["reader"]).json()["record"])[SCORE]
            is not None
            and r
        ),
        "the record lookup to read the new side file",
    )
    assert record[SCORE] == SCORES["a1"] and record["id"] == "a1"


def test_a_filtered_record_says_why_in_the_key_scope(service) -> None:
    client, auth, _ = service
    body = client.get("/records/f1", headers=auth["reader"]).json()
    assert body["status"] == "filtered"
    assert body["filtered"] == {
        "filter": "top_ngram", "value": 0.8, "threshold": 0.5, "bound": "max",
        "detail": "prompt n=2",
    }  # fmt: skip
    assert body["record"]["id"] == "f1" and body["record"]["prompt"] == "buy buy buy buy"
    assert "filter" not in body["record"]  # why is beside the record, not in it
    assert body["session"] == [] and body["duplicates"] == []
    # f1 is alice's: a key scoped to bob may not see it, filtered or not.
    assert client.get("/records/f1", headers=auth["bob"]).status_code == 403
    kept = client.get("/records/b1", headers=auth["bob"]).json()
    assert kept["status"] == "kept" and kept["filtered"] is None
    assert client.get("/records/nope", headers=auth["reader"]).status_code == 404


def test_a_corrected_label_says_who_and_when(service) -> None:
    client, auth, _ = service
    body = client.get("/records/b1", headers=auth["reader"]).json()
    assert body["label_corrections"] == [
        {"original_label": "support", "label": "billing", "action": "correct",
         "corrected_by": "reviewer-7", "corrected_at": "2026-11-30T12:00:00.000000+00:00"}
    ]  # fmt: skip
    assert client.get("/records/a1", headers=auth["reader"]).json()["label_corrections"] == []


def test_python_api_hits_carry_the_side_files_columns(tmp_path: Path) -> None:
    from pipeline.search.api import Searcher, SearchSettings
    from pipeline.store.scope import Scope

    config = build_store(tmp_path)
    build_index(config)
    _write_scores(config.paths.store)
    searcher = Searcher(config.paths.index_dir, config.paths.store, SearchSettings(), None)
    try:
        hits = searcher.search("refund parcel", k=5, mode="keyword", scope=Scope.all())
    finally:
        searcher.close()
    assert hits and hits[0].id == "b1"
    assert hits[0].annotations == {name: None for name in COLUMNS} | {SCORE: SCORES["b1"]}
    as_json = hits[0].to_dict()
    assert as_json[SCORE] == SCORES["b1"] and "annotations" not in as_json


@pytest.mark.slow
def test_cli_search_json_carries_the_side_files_columns(tmp_path: Path) -> None:
    config = build_store(tmp_path)
    build_index(config)
    _write_scores(config.paths.store)
    params = write_params(config, tmp_path)
    composed = OmegaConf.to_container(compose(), resolve=True)
    written = yaml.safe_load(params.read_text()) | {k: composed[k] for k in ("search", "embed")}
    params.write_text(yaml.safe_dump(written), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "search", "refund parcel", "--mode", "keyword",
         "--params", str(params), "--root", str(tmp_path), "--json"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    hits = json.loads(out.stdout)
    hits = hits["results"] if isinstance(hits, dict) else hits
    assert hits[0]["id"] == "b1" and hits[0][SCORE] == SCORES["b1"]
    assert all(name in hit for hit in hits for name in COLUMNS)
