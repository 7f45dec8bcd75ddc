"""Row scope is applied by the search and the store, whoever calls them: a scoped key sees
no record outside its scope through any path (search hits, session turns, a record, its
duplicates, stats, feedback over HTTP and the CLI), and a caller that forgets the scope
fails at once instead of reading everything."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from helpers.serve import ROWS, build_index, build_store, write_params

from pipeline.api.app import create_app
from pipeline.cli import main
from pipeline.search.api import Searcher, SearchSettings
from pipeline.service.feedback import feedback_scores
from pipeline.service.keys import create_key
from pipeline.store import lookup, search
from pipeline.store.db import open_snapshot, snapshot_cursor
from pipeline.store.scope import Scope

BASE_IDS = {row[0] for row in ROWS}
ALL_IDS = [*sorted(BASE_IDS), "a1-dup", "n1-dup"]
QUERIES = ["password", "refund parcel", "capital france", "haiku autumn", "good morning", "thread"]


@pytest.fixture
def project(tmp_path):
    config = build_store(tmp_path)
    build_index(config)
    return config


def _records_in(body) -> list[dict]:
    """Every record-shaped dict of a response body (results, sessions, duplicates...)."""
    found = []
    if isinstance(body, dict):
        if "rid" in body and "id" in body:
            found.append(body)
        for value in body.values():
            found.extend(_records_in(value))
    elif isinstance(body, list):
        for value in body:
            found.extend(_records_in(value))
    return found


@pytest.mark.parametrize(
    ("limits", "field", "visible"),
    [
        ({"user_id": ["alice"]}, "user_id", {"a1", "a2", "a1-dup"}),
        ({"source": ["web"]}, "source", {"b1", "b2"}),
    ],
    ids=["user_id", "source"],
)
def test_a_scoped_key_sees_nothing_outside_its_scope(project, capsys, limits, field, visible):
    config, allowed = project, set(next(iter(limits.values())))
    key = create_key(config.paths.service_db, "writer", "scoped", limits)[0]
    h = {"Authorization": f"Bearer {key}"}
    seen: list[dict] = []
    with TestClient(create_app(config)) as client:
        for text in QUERIES:
            for filters in ([], ["user_id=mallory"], ["source=app"]):
                body = {"text": text, "mode": "keyword", "filters": filters, "with_session": True}
                response = client.post("/search", json=body, headers=h)
                assert response.status_code == 200, response.text
                seen += _records_in(response.json())
        for record_id in ALL_IDS:
            response = client.get(f"/records/{record_id}", headers=h)
            inside = record_id in visible
            if record_id.endswith("-dup"):  # a removed duplicate is not a kept record
                assert response.status_code == 404
            else:
                assert response.status_code == (200 if inside else 403), record_id
            seen += _records_in(response.json())
            thumb = client.post(
                "/feedback", json={"record_id": record_id, "thumb": "up"}, headers=h
            )
            assert thumb.status_code in ((201, 404) if inside else (403, 404)), record_id
        stats = client.get("/stats", headers=h).json()
    assert seen and {r[field] for r in seen} <= allowed
    assert {r["id"] for r in seen} <= visible
    kept = sum(1 for row in ROWS if row[0] in visible)
    assert (stats["records"], stats["scoped"], "rejected" in stats) == (kept, True, False)
    params = ["--params", str(write_params(config, config.paths.store.parent.parent.parent))]
    inside = sorted(visible - {"a1-dup"})[0]
    outside = sorted(BASE_IDS - visible)  # kept records out of scope: exit 5
    for record_id, code in [(inside, 0), ("n1-dup", 3)] + [(o, 5) for o in outside[:2]]:
        assert main(["feedback", record_id, "--down", "--key", key, "--json", *params]) == code
    capsys.readouterr()
    assert set(feedback_scores(config.paths.service_db)) == visible - {"a1-dup"}


def test_the_searcher_applies_the_scope_to_session_turns(project):
    """The session turns of a hit obey the scope in the core, not only over HTTP."""
    searcher = Searcher(project.paths.index_dir, project.paths.store, SearchSettings(), None)
    try:
        alice = Scope.of({"user_id": ["alice"]})
        hits = searcher.search("password", mode="keyword", scope=alice, with_session=True)
        assert hits[0].id == "a1" and [t["id"] for t in hits[0].session] == ["a2"]
        everyone = searcher.search("password", mode="keyword", scope=Scope.all(), with_session=True)
        assert [t["id"] for t in everyone[0].session] == ["a2", "m3"]
    finally:
        searcher.close()


def test_a_caller_that_forgets_the_scope_fails_instead_of_reading_everything(project):
    searcher = Searcher(project.paths.index_dir, project.paths.store, SearchSettings(), None)
    con = open_snapshot(project.paths.store)
    cur = snapshot_cursor(con)
    try:
        with pytest.raises(TypeError):
            searcher.search("password", mode="keyword")  # type: ignore[call-arg]
        as_mapping = {"user_id": ("alice",)}  # the old spelling of a scope is refused
        for call in (
            lambda: searcher.search("password", mode="keyword", scope=as_mapping),
            lambda: lookup.get_record(cur, "a1", as_mapping),
            lambda: lookup.session_turns(cur, "sa", ()),
            lambda: lookup.store_counts(cur, None),
            lambda: search.fetch_records(cur, [1], as_mapping),
        ):
            with pytest.raises(TypeError, match="Scope"):
                call()
    finally:
        cur.close()
        con.close()
        searcher.close()


def test_scope_value():
    scope = Scope.of({"source": ["web", "app", "web"], "user_id": None})
    assert dict(scope) == {"source": ("app", "web")} and scope.restricted
    assert scope.sees({"source": "web"}) and not scope.sees({"source": "x"})
    assert not Scope.all().restricted and Scope.all().sees({"source": "x"})
    assert Scope.all().sql() == ("TRUE", [])
    assert Scope.of({"user_id": []}).sql() == ("list_contains(?::VARCHAR[], user_id)", [[]])
    assert json.dumps(dict(scope)) == '{"source": ["app", "web"]}'
    with pytest.raises(ValueError, match="colour"):
        Scope.of({"colour": ["red"]})
