"""Judged queries and the retrieval metrics: query ids on every search, grades validated
(HTTP and CLI), the judgments snapshot, ranking metrics against scikit-learn, and the
diversity re-rankers on a real index."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from fastapi.testclient import TestClient
from helpers.serve import build_index, build_store, write_params

from pipeline.api.app import create_app
from pipeline.cli import main
from pipeline.errors import UserInputError
from pipeline.retrieval.bootstrap import bootstrap_queries, judged_queries
from pipeline.retrieval.evaluate import variants_from_cfg
from pipeline.retrieval.metrics import context_recall, mrr_at_k, ndcg_at_k, recall_at_k
from pipeline.search.diversity import mmr, one_per_session
from pipeline.service.judgments import judged_queries as stored_judgments
from pipeline.service.judgments import write_judgments
from pipeline.service.keys import create_key


@pytest.fixture
def served(tmp_path):
    config = build_store(tmp_path)
    build_index(config)
    db = config.paths.service_db
    keys = {role: create_key(db, role, role)[0] for role in ("reader", "writer")}
    keys["alice"] = create_key(db, "writer", "alice-app", {"user_id": ["alice"]})[0]
    with TestClient(create_app(config)) as client:
        yield client, keys, config


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_search_response_names_its_query_and_its_results_can_be_graded(served):
    client, keys, config = served
    found = client.post(
        "/search", json={"text": "refund parcel password", "mode": "keyword", "k": 3},
        headers=_auth(keys["reader"]),
    ).json()  # fmt: skip
    query_id, ids = found["query_id"], [hit["id"] for hit in found["results"]]
    assert query_id and ids[0] == "b1" and len(ids) >= 2
    w = _auth(keys["writer"])
    grades = [{"record_id": ids[0], "grade": 3}, {"record_id": ids[1], "grade": 0}]
    made = client.post("/judgments", json={"query_id": query_id, "grades": grades}, headers=w)
    assert made.status_code == 201, made.text
    assert [j["grade"] for j in made.json()["judgments"]] == [3, 0]
    # A second opinion by the same key replaces its first in the snapshot.
    again = {"query_id": query_id, "grades": [{"record_id": ids[0], "grade": 2}]}
    assert client.post("/judgments", json=again, headers=w).status_code == 201

    not_returned = next(r for r in ("a1", "b2", "c1", "n1") if r not in ids)
    for body, status, needle in (
        ({"query_id": "nope", "grades": grades}, 400, "unknown"),
        ({"query_id": query_id, "grades": [{"record_id": not_returned, "grade": 1}]}, 400,
         "not among"),
        ({"query_id": query_id, "grades": [{"record_id": ids[0], "grade": 4}]}, 422, "grade"),
        ({"query_id": query_id, "grades": []}, 422, "grades"),
        ({"query_id": query_id, "grades": [{"record_id": "zz", "grade": 1}]}, 404, "zz"),
    ):  # fmt: skip
        response = client.post("/judgments", json=body, headers=w)
        assert response.status_code == status and needle in response.text, (body, response.text)
    assert client.post("/judgments", json=again, headers=_auth(keys["reader"])).status_code == 403
    # A bad grade in a request stores none of its grades.
    mixed = {"query_id": query_id, "grades": [{"record_id": ids[1], "grade": 1},
                                              {"record_id": not_returned, "grade": 1}]}  # fmt: skip
    assert client.post("/judgments", json=mixed, headers=w).status_code == 400

    out = config.paths.judgments
    assert write_judgments(config.paths.service_db, out) == 1
    rows = pq.read_table(out).to_pylist()
    assert [(r["id"], r["grade"], r["judges"]) for r in rows] == sorted(
        [(ids[0], 2.0, 1), (ids[1], 0.0, 1)], key=lambda row: next(
            r["rid"] for r in rows if r["id"] == row[0]))  # fmt: skip
    assert {r["text"] for r in rows} == {"refund parcel password"}
    (query,) = judged_queries(rows)
    assert query.text == "refund parcel password" and query.grades == {ids[0]: 2.0, ids[1]: 0.0}


def test_the_cli_searches_with_a_query_id_and_grades_by_it(served, capsys):
    _, keys, config = served
    params = write_params(config, config.paths.store.parent.parent.parent)
    sections = yaml.safe_load(params.read_text()) | {"search": {}, "embed": {}}
    params.write_text(yaml.safe_dump(sections))
    common = ["--params", str(params)]
    assert main(["search", "refund parcel", "--mode", "keyword", "-k", "2", "--json", *common]) == 0
    found = json.loads(capsys.readouterr().out)
    query_id, hit = found["query_id"], found["results"][0]["id"]
    assert query_id and hit == "b1"
    grade = ["feedback", hit, "--query", query_id, "--key", keys["writer"]]
    assert main([*grade, "--grade", "3", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)["grade"] == 3
    assert main([*grade, "--grade", "7", *common]) == 2
    assert "0 to 3" in capsys.readouterr().err
    assert main(["feedback", hit, "--query", "nope", "--grade", "1", "--key", keys["writer"],
                 *common]) == 2  # fmt: skip
    assert main(["feedback", "a1", "--query", query_id, "--grade", "1", "--key", keys["writer"],
                 *common]) == 2  # fmt: skip
    assert "not among" in capsys.readouterr().err
    assert main(["feedback", hit, "--grade", "1", "--key", keys["writer"], *common]) == 2
    assert main([*grade[:-1], keys["reader"], "--grade", "1", *common]) == 5
    assert main([*grade[:-1], keys["alice"], "--grade", "1", *common]) == 5  # b1 is bob's
    assert main(["stats", "feedback", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)["judged_queries"] == 1
    assert [r["grade"] for r in stored_judgments(config.paths.service_db)] == [3.0]


def test_metrics_agree_with_scikit_learn():
    from sklearn.metrics import ndcg_score

    grades = {"a": 3.0, "b": 1.0, "c": 0.0, "d": 2.0}
    ranked = ["c", "a", "x", "d", "b"]
    assert recall_at_k(ranked, {"a", "b", "d"}, 3) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, {"a", "b", "d"}, 5) == 1.0
    assert mrr_at_k(ranked, {"a", "d"}, 10) == 0.5 and mrr_at_k(ranked, {"q"}, 10) == 0.0
    # scikit-learn: true gains per document, predicted scores giving our order.
    docs = sorted(set(ranked) | set(grades))
    true = np.array([[2.0 ** grades.get(d, 0.0) - 1 for d in docs]])
    score = np.array([[len(ranked) - ranked.index(d) if d in ranked else 0 for d in docs]])
    for k in (1, 3, 5):
        assert ndcg_at_k(ranked, grades, k) == pytest.approx(ndcg_score(true, score, k=k))
    assert ndcg_at_k(["a", "d", "b"], grades, 3) == pytest.approx(1.0)
    assert context_recall(["a", "zz"], {"a", "b"}) == 0.5 and context_recall(["a"], set()) == 0.0


def test_bootstrap_queries_are_seeded_windows_of_their_record():
    ids = [f"r{i}" for i in range(50)]
    prompts = [" ".join(f"word{i}n{j}" for j in range(30)) if i % 3 else "short" for i in
               range(50)]  # fmt: skip
    one = bootstrap_queries(ids, prompts, 10, seed=1)
    assert (
        one
        == bootstrap_queries(ids, prompts, 10, seed=1)
        != bootstrap_queries(ids, prompts, 10, seed=2)
    )
    assert len(one) == 10 and all(len(q.grades) == 1 for q in one)
    for q in one:
        (rid,) = q.grades
        source = prompts[ids.index(rid)]
        assert 10 <= len(q.text.split()) <= 12 and rid != "r0"
        assert sum(w in source.split() for w in q.text.split()) >= 5  # typos in some words


def test_variants_are_checked():
    names = [v.name for v in variants_from_cfg(["vector", "hybrid", "hybrid:mmr"])]
    assert names == ["vector", "hybrid", "hybrid_mmr"]
    for bad in (["fuzzy"], ["hybrid:shuffle"], ["hybrid", "hybrid:none"]):
        with pytest.raises(UserInputError, match=r"retrieval\.variants"):
            variants_from_cfg(bad)


def test_one_per_session_keeps_the_best_turn_of_each_conversation():
    sessions = ["s1", "s1", None, "s2", None, "s1", "s3"]
    assert one_per_session(sessions, 10) == [0, 2, 3, 4, 6]
    assert one_per_session(sessions, 2) == [0, 2]


def test_mmr_trades_relevance_for_novelty():
    near = np.array([1.0, 0.0], np.float32)
    copy = np.array([0.999, 0.0447], np.float32)
    other = np.array([0.0, 1.0], np.float32)
    vectors = np.stack([near, copy / np.linalg.norm(copy), other])
    relevance = np.array([1.0, 0.95, 0.6])
    assert mmr(relevance, vectors, 3, 1.0) == [0, 1, 2]  # lambda 1: the ranking as it is
    assert mmr(relevance, vectors, 2, 0.5) == [0, 2]  # the near-copy gives way
    assert mmr(relevance[:0], vectors[:0], 3, 0.5) == []


def test_search_with_session_diversity_on_a_real_index(served):
    client, keys, _ = served
    h = _auth(keys["reader"])

    def sessions(diversity: str) -> list:
        body = {"text": "password not work", "mode": "keyword", "k": 5, "diversity": diversity}
        response = client.post("/search", json=body, headers=h)
        assert response.status_code == 200, response.text
        return [hit["session_id"] for hit in response.json()["results"]]

    plain = sessions("none")
    assert plain.count("sa") >= 2  # a1 and a2 are turns of one conversation
    grouped = sessions("session")
    assert grouped.count("sa") == 1 and grouped[0] == "sa"
    bad = client.post("/search", json={"text": "x", "diversity": "random"}, headers=h)
    assert bad.status_code == 422


def test_the_python_api_logs_its_search_and_returns_the_id(served):
    from pipeline.search.project import search
    from pipeline.store import service as service_db

    _, _, config = served
    root = config.paths.store.parent.parent.parent
    params = yaml.safe_load(write_params(config, root).read_text())
    params |= {"search": {}, "embed": {}}
    hits = search("refund parcel", mode="keyword", k=2, root=root, params=params)
    assert isinstance(hits, list) and hits[0].id == "b1" and hits.query_id
    with service_db.open_service_db(config.paths.service_db) as con:
        row = service_db.logged_query(con, hits.query_id)
    assert row["text"] == "refund parcel" and row["key_id"] == "local"
    assert row["result_rids"] == [h.rid for h in hits]
    unlogged = search("refund parcel", mode="keyword", k=2, root=root, params=params, log=False)
    assert unlogged.query_id is None and [h.id for h in unlogged] == [h.id for h in hits]
