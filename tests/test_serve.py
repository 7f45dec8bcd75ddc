"""The HTTP API on a real store, index and service DB in tmp_path: auth for every endpoint and
role, scopes, validation, records, feedback, the query log and index reload."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from helpers.serve import build_index, build_store, write_params
from helpers.wait import wait_until

from pipeline.api.app import create_app
from pipeline.cli import main
from pipeline.service.feedback import feedback_scores, write_feedback_scores
from pipeline.service.keys import create_key
from pipeline.service.querylog import usage_report


def _serve(tmp_path):
    config = build_store(tmp_path)
    build_index(config)
    db = config.paths.service_db
    keys = {role: create_key(db, role, role)[0] for role in ("reader", "writer", "admin")}
    keys["alice"] = create_key(db, "writer", "alice-app", {"user_id": ["alice"]})[0]
    keys["web"] = create_key(db, "reader", "web-app", {"source": ["web"]})[0]
    with TestClient(create_app(config)) as client:
        yield client, keys, config


@pytest.fixture
def served(tmp_path):
    yield from _serve(tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server for the auth matrix: its calls change nothing the matrix depends on."""
    yield from _serve(tmp_path_factory.mktemp("matrix"))


def _auth(key):
    return {"Authorization": f"Bearer {key}"}


# (method, path, json body, the least role allowed)
ENDPOINTS = [
    ("post", "/search", {"text": "refund parcel", "mode": "keyword"}, "reader"),
    ("get", "/records/b1", None, "reader"),
    ("get", "/stats", None, "reader"),
    ("post", "/feedback", {"record_id": "b1", "thumb": "up"}, "writer"),
    ("get", "/usage", None, "admin"),
    ("get", "/keys", None, "admin"),
    ("post", "/keys", {"role": "reader", "name": "made-by-api"}, "admin"),
    ("delete", "/keys/doesnotexist", None, "admin"),
    ("post", "/erase", {"user_id": "nobody-here"}, "admin"),
    ("get", "/whoami", None, "reader"),
]
RANK = {"reader": 0, "writer": 1, "admin": 2}


def _call(client, method, path, body, headers):
    return client.request(method.upper(), path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body", "least"), ENDPOINTS)
def test_every_endpoint_needs_a_valid_key(shared, method, path, body, least):
    client, keys, _ = shared
    for headers in ({}, _auth("pk_nope_x"), _auth(keys["reader"] + "x"), {"X-API-Key": "junk"}):
        response = _call(client, method, path, body, headers)
        assert response.status_code == 401, (path, headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "body", "least"), ENDPOINTS)
@pytest.mark.parametrize("role", ["reader", "writer", "admin"])
def test_every_endpoint_and_role(shared, method, path, body, least, role):
    client, keys, _ = shared
    response = _call(client, method, path, body, _auth(keys[role]))
    if RANK[role] < RANK[least]:
        assert response.status_code == 403, response.text
        assert f"needs {least}" in response.json()["detail"]
    elif path == "/keys/doesnotexist":
        assert response.status_code == 404  # allowed, but there is no such key
    else:
        assert 200 <= response.status_code < 300, response.text
    # The other header form works the same.
    again = _call(client, method, path, body, {"X-API-Key": keys[role]})
    assert (again.status_code == 403) == (response.status_code == 403)


def test_health_needs_no_key(served):
    client, _, _ = served
    body = client.get("/health").json()
    assert body == {"status": "ok", "index": True, "store": True, "detail": None}


def test_predict_with_no_model_is_a_503_that_says_so_and_search_still_works(shared):
    client, keys, _ = shared
    h = _auth(keys["reader"])
    response = client.post("/predict", json={"text": "refund parcel"}, headers=h)
    assert response.status_code == 503
    assert response.json()["detail"].startswith("no model to serve: ")
    assert client.post("/search", json={"text": "refund", "mode": "keyword"}, headers=h).is_success


def test_search_filters_and_validation(served):
    client, keys, _ = served
    h = _auth(keys["reader"])
    hits = client.post("/search", json={"text": "refund parcel", "mode": "keyword"}, headers=h)
    assert hits.status_code == 200
    assert hits.json()["results"][0]["id"] == "b1"
    filtered = client.post(
        "/search",
        json={"text": "password", "mode": "keyword", "filters": ["label=billing"]},
        headers=h,
    ).json()["results"]
    assert filtered == []
    bad = client.post("/search", json={"text": "x", "filters": ["colour=red"]}, headers=h)
    assert bad.status_code == 400 and "colour" in bad.json()["detail"]
    for body in (
        {"text": "x", "k": 0},
        {"text": "x", "k": 101},
        {"text": "x", "mode": "fuzzy"},
        {"text": ""},
        {"text": "   "},
        {"text": "x", "limit": 3},
        {"k": 3},
    ):
        response = client.post("/search", json=body, headers=h)
        assert response.status_code == 422, (body, response.text)
    assert client.post("/search", content=b"{not json", headers=h).status_code == 422


def test_record_with_session_and_duplicates(served):
    client, keys, _ = served
    h = _auth(keys["reader"])
    body = client.get("/records/a1", headers=h).json()
    assert body["record"]["prompt"] == "how do I reset my password"
    assert [t["id"] for t in body["session"]] == ["a1", "a2", "m3"]
    assert [d["id"] for d in body["duplicates"]] == ["a1-dup"]
    assert body["record"]["created_at"].startswith("2024-05-01T00:00:00")
    by_rid = client.get(f"/records/{body['record']['rid']}", headers=h).json()
    assert by_rid["record"]["id"] == "a1"
    assert client.get("/records/99999999999999999999999", headers=h).status_code == 404
    missing = client.get("/records/nope", headers=h)
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_scoped_keys_see_only_their_records(served):
    client, keys, _ = served
    alice, web = _auth(keys["alice"]), _auth(keys["web"])
    for mode_text in ("refund parcel", "password", "capital france", "haiku"):
        results = client.post(
            "/search", json={"text": mode_text, "mode": "keyword", "k": 10}, headers=alice
        ).json()["results"]
        assert {r["user_id"] for r in results} <= {"alice"}
    # A filter cannot widen a scope.
    widened = client.post(
        "/search", json={"text": "refund", "mode": "keyword", "filters": ["user_id=bob"]},
        headers=alice,
    ).json()["results"]  # fmt: skip
    assert widened == []
    assert client.get("/records/b1", headers=alice).status_code == 403
    assert client.get("/records/a2", headers=alice).status_code == 200
    assert client.get("/records/a1", headers=web).status_code == 403
    feedback = client.post("/feedback", json={"record_id": "b1", "score": 2}, headers=alice)
    assert feedback.status_code == 403
    assert client.get("/stats", headers=alice).json()["records"] == 2
    web_stats = client.get("/stats", headers=web).json()
    assert web_stats["records"] == 2 and web_stats["by_source"] == {"web": 2}
    assert "rejected" not in web_stats
    full = client.get("/stats", headers=_auth(keys["reader"])).json()
    assert (full["records"], full["duplicates"], full["rejected"]) == (7, 2, 2)
    # The session of a record in scope only shows turns in scope (m3 is mallory's).
    session = client.get("/records/a1", headers=alice).json()
    assert [t["id"] for t in session["session"]] == ["a1", "a2"]
    hits = client.post(
        "/search", json={"text": "password", "mode": "keyword", "with_session": True},
        headers=alice,
    ).json()["results"]  # fmt: skip
    assert hits[0]["id"] == "a1" and [t["id"] for t in hits[0]["session"]] == ["a2"]
    unscoped = client.post(
        "/search", json={"text": "password", "mode": "keyword", "with_session": True},
        headers=_auth(keys["reader"]),
    ).json()["results"]  # fmt: skip
    assert [t["id"] for t in unscoped[0]["session"]] == ["a2", "m3"]


def test_feedback_is_stored_with_identity_and_scores(served):
    client, keys, config = served
    h = _auth(keys["writer"])
    assert (
        client.post("/feedback", json={"record_id": "a1", "score": 5}, headers=h).status_code == 201
    )
    response = client.post(
        "/feedback", json={"record_id": "a1", "thumb": "down", "comment": "wrong"}, headers=h
    )
    assert response.status_code == 201 and response.json()["score"] == 0.0
    for body in (
        {"record_id": "a1"},
        {"record_id": "a1", "score": 4, "thumb": "up"},
        {"record_id": "a1", "score": 6},
        {"record_id": "a1", "thumb": "sideways"},
    ):
        assert client.post("/feedback", json=body, headers=h).status_code == 422, body
    assert (
        client.post("/feedback", json={"record_id": "zz", "score": 3}, headers=h).status_code == 404
    )
    scores = feedback_scores(config.paths.service_db)
    assert list(scores) == ["a1"]
    assert scores["a1"].count == 2 and scores["a1"].score == pytest.approx(0.5)
    out = config.paths.service_db.parent / "feedback.parquet"
    assert write_feedback_scores(config.paths.service_db, out) == 1
    assert pq.read_table(out).to_pylist() == [
        {"id": "a1", "rid": scores["a1"].rid, "feedback_score": 0.5, "feedback_count": 2}
    ]


def test_feedback_cli_needs_a_writer_key(served, capsys):
    _, keys, config = served
    params = write_params(config, config.paths.store.parent.parent.parent)
    common = ["--params", str(params)]
    assert main(["feedback", "b2", "--up", "--key", keys["writer"], "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "up"
    assert main(["feedback", "b2", "--score", "4", "--key", keys["reader"], *common]) == 5
    assert main(["feedback", "b2", "--score", "4", "--key", keys["alice"], *common]) == 5
    assert main(["feedback", "b2", "--score", "9", "--key", keys["writer"], *common]) == 2
    assert main(["feedback", "nope", "--down", "--key", keys["writer"], *common]) == 3
    assert main(["feedback", "b2", "--down", *common]) == 5  # no key at all
    assert feedback_scores(config.paths.service_db)["b2"].count == 1


def test_every_query_is_logged_and_summarised(served, capsys):
    client, keys, config = served
    h = _auth(keys["reader"])
    for text in ("refund parcel", "refund", "zzzz-nothing-matches"):
        client.post("/search", json={"text": text, "mode": "keyword", "k": 3}, headers=h)
    client.post("/search", json={"text": "x", "filters": ["bad=1"]}, headers=h)
    client.app.state.service.querylog.flush()
    report = usage_report(config.paths.service_db)
    assert report["queries"] == 4 and report["failed_queries"] == 1
    assert report["zero_result_queries"] == 1
    assert report["top_zero_result"] == [{"text": "zzzz-nothing-matches", "count": 1}]
    b1 = client.get("/records/b1", headers=h).json()["record"]["rid"]
    assert report["most_returned"][0] == {"rid": b1, "count": 2}
    assert report["latency_ms"]["p50"] > 0 and len(report["per_day"]) == 1
    params = write_params(config, config.paths.store.parent.parent.parent)
    assert main(["stats", "usage", "--params", str(params)]) == 0
    assert "queries: 4" in capsys.readouterr().out
    usage = client.get("/usage", headers=_auth(keys["admin"])).json()
    assert usage["queries"] == 4


def test_keys_over_the_api_and_revocation(served):
    client, keys, _ = served
    admin = _auth(keys["admin"])
    made = client.post(
        "/keys", json={"role": "reader", "scope": {"source": ["app"]}}, headers=admin
    )
    assert made.status_code == 201
    new_key = made.json()["key"]
    who = client.get("/whoami", headers=_auth(new_key)).json()
    assert who["role"] == "reader" and who["scope"] == {"source": ["app"]}
    listed = client.get("/keys", headers=admin).json()
    assert new_key not in json.dumps(listed) and len(listed) == 6
    bad = client.post("/keys", json={"role": "admin", "scope": {"user_id": ["x"]}}, headers=admin)
    assert bad.status_code == 400
    assert client.delete(f"/keys/{made.json()['key_id']}", headers=admin).status_code == 200
    assert client.get("/whoami", headers=_auth(new_key)).status_code == 401


def test_republished_index_is_picked_up_without_restart(served):
    client, keys, config = served
    h = _auth(keys["reader"])
    before = client.app.state.service.searcher().manifest["data_hash"]
    table = pq.read_table(config.paths.records)
    pq.write_table(table.slice(0, 4), config.paths.records)
    build_index(config)
    wait_until(
        lambda: client.app.state.service.searcher().manifest["data_hash"] != before,
        "the new index to be loaded",
    )
    ids = {
        r["id"]
        for r in client.post(
            "/search", json={"text": "refund haiku capital", "mode": "keyword"}, headers=h
        ).json()["results"]
    }
    assert ids <= {"a1", "a2", "m3", "b1"} and "b1" in ids


def test_replaced_store_and_index_are_both_picked_up(served):
    """`dvc repro` replaces the store and republishes the index; new records become findable."""
    client, keys, config = served
    h = _auth(keys["reader"])
    assert client.get("/records/z9", headers=h).status_code == 404
    fresh = build_store(config.paths.store.parent.parent.parent / "next", extra=True)
    os.replace(fresh.paths.store, config.paths.store)
    os.replace(fresh.paths.records, config.paths.records)
    build_index(config)
    wait_until(lambda: client.get("/records/z9", headers=h).status_code == 200, "the new store")
    body = {"text": "zebra crossing", "mode": "keyword"}

    def top() -> list[str]:
        return [r["id"] for r in client.post("/search", json=body, headers=h).json()["results"]]

    # The index is reloaded on its own schedule (serve.reload_seconds) after the store.
    wait_until(lambda: top()[:1] == ["z9"], "the new index to rank z9 first")


def test_no_store_or_index_yet_is_503_not_404(tmp_path):
    config = build_store(tmp_path)
    config.paths.store.unlink()
    key, _ = create_key(config.paths.service_db, "writer")
    with TestClient(create_app(config)) as client:
        assert client.get("/health").json()["status"] == "degraded"
        h = _auth(key)
        assert client.get("/records/a1", headers=h).status_code == 503
        assert client.get("/stats", headers=h).status_code == 503
        assert client.post("/search", json={"text": "x"}, headers=h).status_code == 503
        body = {"record_id": "a1", "thumb": "up"}
        assert client.post("/feedback", json=body, headers=h).status_code == 503
