"""The JSON form of a filter over HTTP (pipeline/api/filter_json.py): POST /search and
POST /rag take objects that compile to the tree the string syntax parses into, under the
same limits, with a 422 naming the problem; a real store and a real FAISS + BM25 index
behind the real app (keyword mode: no encoder)."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient
from helpers.serve import build_index, build_store

from pipeline.api.app import create_app
from pipeline.api.filter_json import compile_filter
from pipeline.errors import UserInputError
from pipeline.search.filter_syntax import parse
from pipeline.service.keys import create_key
from pipeline.service.limits import FILTER_DEPTH_MAX, FILTER_TERMS_MAX
from pipeline.store.service import logged_query, open_service_db


def cond(field: str, value: object, op: str = "=") -> dict:
    return {"field": field, "op": op, "value": value}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    config = build_store(tmp_path_factory.mktemp("filter-json"))
    build_index(config)
    config = dataclasses.replace(config, rag={"mode": "keyword"})
    key = create_key(config.paths.service_db, "reader", "r")[0]
    with TestClient(create_app(config)) as client:
        yield client, {"Authorization": f"Bearer {key}"}, config


TEXT = "password refund parcel work thread autumn german capital"  # a word of most records


def _ids(client, headers, filters, text=TEXT) -> list[str]:
    response = client.post(
        "/search", json={"text": text, "mode": "keyword", "k": 10, "filters": filters},
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


@pytest.mark.parametrize(
    ("json_form", "string_form"),
    [
        (cond("label", "support"), "label=support"),
        (
            {"and": [cond("label", "support"), {"not": cond("user_id", "mallory")}]},
            "label=support AND NOT user_id=mallory",
        ),
        ({"or": [cond("label", "billing"), cond("metadata.n", 2, ">=")]},
         "label=billing OR metadata.n>=2"),
        ({"not": {"or": [cond("user_id", "alice"), cond("quality", 4, "<")]}},
         "NOT (user_id=alice OR quality<4)"),
    ],
)  # fmt: skip
def test_a_json_filter_finds_what_its_string_form_finds(served, json_form, string_form):
    client, headers, _ = served
    assert compile_filter(json_form) == str(parse(string_form))
    assert parse(compile_filter(json_form)) == parse(string_form)  # the same tree
    got = _ids(client, headers, [json_form])
    assert got == _ids(client, headers, [string_form])
    # Mixed with a string filter in one list: ANDed as strings are.
    assert _ids(client, headers, [json_form, "NOT label=creative"]) == [i for i in got if i != "c1"]


def test_the_json_form_selects_as_documented(served):
    client, headers, _ = served
    supported = {"and": [cond("label", "support"), {"not": cond("user_id", "mallory")}]}
    assert set(_ids(client, headers, [supported])) == {"a1", "a2"}  # m3 is mallory's
    assert set(_ids(client, headers, [cond("metadata.n", 4, ">=")])) <= {"b1", "b2", "c1", "n1"}


def _too_deep() -> dict:
    node: dict = cond("label", "a")
    for _ in range(FILTER_DEPTH_MAX + 1):
        node = {"not": node}
    return node


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (cond("labl", "x"), "field 'labl' is unknown"),
        (cond("label", "x", "~"), "op '~'; expected one of"),
        (cond("label", ["a", "b"], "in"), "op 'in'"),
        ({"not": cond("label", False, "in")}, "op 'in'"),  # was a TypeError: a 500
        (cond("label", ["a", "b"]), "value ['a', 'b'] must be text"),
        (cond("metadata.tier", None), "value None must be text"),
        (cond("label", "a", "<"), "ranges apply only to"),
        (cond("quality", "high", ">="), "is not a number"),
        ({"field": "label"}, "expected {field, op, value}"),
        ({"and": []}, "non-empty list"),
        ({"and": [cond("label", "a")], "or": []}, "expected {field, op, value}"),
        ({"and": ["label=a"]}, "expected an object"),
        ({"or": [cond("label", str(i)) for i in range(FILTER_TERMS_MAX + 1)]},
         f"more than {FILTER_TERMS_MAX} conditions"),
        (_too_deep(), f"nested deeper than {FILTER_DEPTH_MAX}"),
        ({"or": [cond("label", "x" * 80) for _ in range(4)]}, "at most 256"),
    ],
)  # fmt: skip
def test_a_bad_json_filter_is_a_422_naming_the_problem(served, bad, needle):
    client, headers, _ = served
    with pytest.raises(UserInputError) as raised:
        compile_filter(bad)
    assert needle in str(raised.value)
    for path, body in (("/search", {"text": "x"}), ("/rag", {"question": "x"})):
        response = client.post(path, json={**body, "filters": ["label=a", bad]}, headers=headers)
        assert response.status_code == 422, (path, response.text)
        (error,) = response.json()["detail"]
        assert error["loc"][-1] == "filters" and "filters[1]" in error["msg"], error
        assert needle in error["msg"], error


def test_a_metadata_key_no_record_has_fails_as_a_string_filter_does(served):
    client, headers, _ = served
    body = {"text": "x", "mode": "keyword", "filters": [cond("metadata.tier", "gold")]}
    response = client.post("/search", json=body, headers=headers)
    assert response.status_code == 400 and "no record has metadata key 'tier'" in response.text


def test_rag_takes_the_json_form_and_logs_its_string_form(served):
    client, headers, config = served
    only_support = {"and": [cond("label", "support"), {"not": cond("user_id", "mallory")}]}
    response = client.post(
        "/rag", json={"question": "reset my password", "filters": [only_support]},
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["citations"] and {c["id"] for c in body["citations"]} <= {"a1", "a2"}
    client.app.state.service.querylog.flush()
    with open_service_db(config.paths.service_db, read_only=True) as con:
        row = logged_query(con, body["query_id"])
    assert row["filters"] == ["label=support AND NOT user_id=mallory"]


def test_no_json_object_gets_past_as_anything_but_a_clear_error():
    """Random trees of odd fields, ops and values: each compiles or is a UserInputError
    (a 422); any other exception would be a 500 from the validator."""
    import random

    rnd = random.Random(0)
    fields = ["label", "quality", "created_at", "metadata.a", "metadata", "x", "", 3, None, []]
    ops = ["=", "!=", "<", ">=", "in", "~", None, 1, [], {}]
    values = ["a", "", "2024-13-45", 1, 1.5, True, None, [], ["a"], {}, float("nan"), "x" * 300]

    def tree(depth: int = 0) -> object:
        roll = rnd.random()
        if depth > 7 or roll < 0.4:
            keys = {"field": fields, "op": ops, "value": values}
            return {k: rnd.choice(v) for k, v in keys.items() if rnd.random() < 0.9}
        if roll < 0.6:
            return {"and": [tree(depth + 1) for _ in range(rnd.randint(0, 4))]}
        if roll < 0.8:
            return {"or": [tree(depth + 1) for _ in range(rnd.randint(0, 4))]}
        return {"not": tree(depth + 1) if rnd.random() < 0.9 else "x"}

    compiled = 0
    for _ in range(3000):
        try:
            parse(compile_filter(tree()))
            compiled += 1
        except UserInputError:
            pass
    assert compiled > 50  # the generator also makes valid filters: both paths ran


def test_the_openapi_schema_offers_both_forms(served):
    client, _, _ = served
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for body in ("SearchRequest", "RagRequest"):
        filters = schemas[body]["properties"]["filters"]
        kinds = [item["type"] for item in filters["items"]["anyOf"]]
        assert kinds == ["string", "object"], body
        assert filters["maxItems"] >= 1
