"""Erasure: a user's records leave the store, records.parquet, both indexes and the feedback,
cannot be found, read or counted afterwards, and a dedup re-run does not bring them back."""

from __future__ import annotations

import hashlib
import json

import duckdb
import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from helpers.serve import _rid, build_index, build_store, write_params

from pipeline.api.app import create_app
from pipeline.cli import main
from pipeline.service.erasure import add_to_erasure_list, erase_user
from pipeline.service.feedback import feedback_scores
from pipeline.service.keys import create_key
from pipeline.store import service as service_db

ALICE_PROMPTS = ("how do I reset my password", "it still does not work")


def _count(store, sql):
    # ATTACH, not connect(path): DuckDB would hand back a cached instance of the replaced file
    # while any connection to it (a searcher's) is still open in this process.
    con = duckdb.connect()
    con.execute("ATTACH ? AS store (READ_ONLY)", [str(store)])
    con.execute("USE store")
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def _found(client, key, text, mode):
    body = {"text": text, "mode": mode, "k": 10}
    response = client.post("/search", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["results"]]


def test_erase_over_http_removes_everything_of_the_user(tmp_path):
    config = build_store(tmp_path)
    build_index(config)
    db = config.paths.service_db
    admin, _ = create_key(db, "admin")
    writer, _ = create_key(db, "writer")
    h = {"Authorization": f"Bearer {admin}"}
    with TestClient(create_app(config)) as client:
        assert "a1" in _found(client, writer, "reset my password", "keyword")
        for rid_s in ("a1", "a2", "b1"):
            body = {"record_id": rid_s, "score": 4}
            assert client.post("/feedback", json=body, headers={"X-API-Key": writer}).is_success
        before = client.get("/stats", headers=h).json()

        response = client.post("/erase", json={"user_id": "alice"}, headers=h)
        assert response.status_code == 200, response.text
        row = response.json()
        assert (row["records"], row["duplicates"], row["feedback"]) == (2, 1, 2)
        assert (row["preferences"], row["pii_redactions"], row["rejected"]) == (1, 1, 1)
        assert row["index_removed"] == 2 and row["parquet_rows"] == 2

        for text in ALICE_PROMPTS:
            assert not {"a1", "a2"} & set(_found(client, writer, text, "keyword"))
        for rid_s in ("a1", "a2", "a1-dup"):
            assert client.get(f"/records/{rid_s}", headers=h).status_code == 404
        after = client.get("/stats", headers=h).json()
        assert after["records"] == before["records"] - 2
        assert after["duplicates"] == before["duplicates"] - 1
        assert "alice" not in json.dumps(after)
        # Other users are untouched.
        assert client.get("/records/b1", headers=h).status_code == 200
        assert "b1" in _found(client, writer, "refund parcel", "keyword")

    digest = hashlib.sha256(b"alice").hexdigest()
    assert config.paths.erasures.read_text().split() == [digest]
    assert "alice" not in pq.read_table(config.paths.records)["user_id"].to_pylist()
    store = config.paths.store
    assert _count(store, "SELECT count(*) FROM records WHERE user_id = 'alice'") == 0
    assert _count(store, "SELECT count(*) FROM preferences WHERE record_id = 'a1'") == 0
    assert _count(store, "SELECT count(*) FROM pii_redactions") == 0
    assert _count(store, "SELECT count(*) FROM rejected") == 1
    assert _count(store, "SELECT count(*) FROM preferences") == 1
    assert list(feedback_scores(db)) == ["b1"]
    with service_db.open_service_db(db) as con:
        erasures = service_db.list_erasures(con)
    assert len(erasures) == 1 and erasures[0]["user_hash"] == digest
    assert "alice" not in json.dumps(erasures)
    assert erasures[0]["erased_by"].startswith("key:")


def test_erase_cli_is_idempotent_and_scrubs_the_query_log(tmp_path, capsys):
    config = build_store(tmp_path)
    build_index(config)
    params = write_params(config, tmp_path)
    reader, _ = create_key(config.paths.service_db, "reader")
    with TestClient(create_app(config)) as client:
        assert "b1" in _found(client, reader, "refund parcel", "keyword")
        assert "c1" in _found(client, reader, "haiku autumn", "keyword")
    assert main(["erase", "--user-id", "bob", "--json", "--params", str(params)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["records"], first["index_removed"]) == (2, 2)
    assert main(["erase", "--user-id", "bob", "--json", "--params", str(params)]) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["records"], second["index_removed"], second["parquet_rows"]) == (0, 0, 0)
    assert len(config.paths.erasures.read_text().split()) == 1
    with service_db.open_service_db(config.paths.service_db) as con:
        returned = service_db.usage_summary(con, 10)["most_returned"]
    bob_rids = {_rid("b1"), _rid("b2")}
    assert returned and not bob_rids & {r["rid"] for r in returned}
    assert main(["erase", "--user-id", " ", "--params", str(params)]) == 2


def test_erasure_list_keeps_existing_lines(tmp_path):
    path = tmp_path / "erasures.txt"
    path.write_text("# erased users\n" + "a" * 64)  # no trailing newline
    assert add_to_erasure_list(path, "b" * 64)
    assert not add_to_erasure_list(path, "b" * 64)
    assert path.read_text() == "# erased users\n" + "a" * 64 + "\n" + "b" * 64 + "\n"


def test_erase_without_any_outputs_yet_only_lists_the_user(tmp_path):
    config = build_store(tmp_path)
    config.paths.store.unlink()
    config.paths.records.unlink()
    row = erase_user(config.paths, "carol", "test")
    assert row["records"] == 0 and config.paths.erasures.exists()
