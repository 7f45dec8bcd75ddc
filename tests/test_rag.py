"""RAG context: retrieval in the caller's scope and filters, neighbouring turns, near-identical
passages merged, an exact token budget, numbered citations that are kept records, and the
CLI and POST /rag over a real store and a real FAISS + BM25 index (keyword mode: no encoder;
tests/test_rag_generate.py runs the real encoder, service and a model server)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest
import yaml
from fastapi.testclient import TestClient
from helpers.serve import build_index, build_store, write_params
from tokenizers import Tokenizer

from pipeline.api.app import create_app
from pipeline.embed.models import BUNDLED_MODEL, model_dir
from pipeline.errors import UserInputError
from pipeline.rag import RagSettings, build_context, context_recall
from pipeline.rag.generate import cited
from pipeline.rag.passages import merge_near_identical, passage_of
from pipeline.search.api import Searcher, SearchSettings
from pipeline.service.keys import create_key
from pipeline.store.db import connect
from pipeline.store.scope import Scope

KEYWORD = RagSettings(mode="keyword", candidates=10)


@pytest.fixture
def project(tmp_path):
    config = build_store(tmp_path)
    build_index(config)
    return config


@pytest.fixture
def searcher(project):
    s = Searcher(project.paths.index_dir, project.paths.store, SearchSettings(), encode=None)
    yield s
    s.close()


def _independent_count(text: str) -> int:
    """Tokens of `text` under the bundled tokenizer, loaded here apart from pipeline/rag."""
    tokenizer = Tokenizer.from_file(str(model_dir(BUNDLED_MODEL) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def _kept_ids(project) -> set[str]:
    con = connect(project.paths.store, read_only=True)
    try:
        return {row[0] for row in con.execute("SELECT id FROM records").fetchall()}
    finally:
        con.close()


def test_context_cites_kept_records_by_number_with_the_hits_neighbours(project, searcher):
    ctx = build_context(searcher, "reset my password", KEYWORD, scope=Scope.all())
    ids = [c["id"] for c in ctx.citations]
    assert set(ids) <= _kept_ids(project)
    assert [c["n"] for c in ctx.citations] == list(range(1, len(ids) + 1))
    for c in ctx.citations:  # the caller can find each number in the prompt
        assert f"[{c['n']}] " in ctx.context
    # a1 is the hit; a2, the next turn of its session, comes as its neighbour, right after it
    hit = next(c for c in ctx.citations if c["id"] == "a1")
    assert hit["role"] == "hit" and hit["score"] is not None
    after = ctx.citations[hit["n"]]
    assert (after["id"], after["role"], after["of"]) == ("a2", "neighbour", "a1")
    assert "click forgot password" in ctx.context  # whole records, not search snippets
    assert ctx.tokens == _independent_count(ctx.prompt) <= ctx.budget
    assert ctx.prompt.endswith("Question: reset my password\nAnswer:")


@pytest.mark.parametrize("budget", [70, 80, 95, 110, 140, 200, 400])
def test_the_prompt_never_exceeds_the_budget_and_drops_are_listed(searcher, budget):
    ctx = build_context(
        searcher, "password refund parcel capital", KEYWORD, scope=Scope.all(), budget=budget
    )
    assert ctx.tokens == _independent_count(ctx.prompt) <= budget
    cited_ids = {c["id"] for c in ctx.citations}
    dropped = {d["id"] for d in ctx.dropped}
    assert not cited_ids & dropped
    assert all(d["reason"] == "budget" and d["tokens"] > 0 for d in ctx.dropped)
    full = build_context(searcher, "password refund parcel capital", KEYWORD, scope=Scope.all())
    assert cited_ids | dropped == {c["id"] for c in full.citations}  # nothing unaccounted


def test_a_hit_too_long_for_the_budget_is_cut_rather_than_left_out(searcher):
    empty = build_context(searcher, "password", KEYWORD, scope=Scope.all(), budget=10_000)
    overhead = _independent_count(KEYWORD.template.format(context="", question="password"))
    ctx = build_context(searcher, "password", KEYWORD, scope=Scope.all(), budget=overhead + 6)
    assert len(ctx.citations) == 1 and ctx.citations[0]["truncated"] is True
    assert ctx.citations[0]["id"] == empty.citations[0]["id"]
    assert ctx.tokens <= overhead + 6
    with pytest.raises(UserInputError, match="over the budget"):
        build_context(searcher, "password", KEYWORD, scope=Scope.all(), budget=overhead - 1)


def test_scope_and_filters_bound_hits_and_neighbours(project, searcher):
    bob = Scope.of({"user_id": ["bob"]})
    ctx = build_context(searcher, "password refund", KEYWORD, scope=bob)
    assert {c["id"] for c in ctx.citations} <= {"b1", "b2"}
    alice = build_context(searcher, "password", KEYWORD, scope=Scope.of({"user_id": ["alice"]}))
    assert "m3" not in alice.cited_ids()  # mallory's turn of alice's session stays out
    billing = build_context(
        searcher, "password refund", KEYWORD, scope=Scope.all(), filters=["label=billing"]
    )
    assert [c["id"] for c in billing.citations] == ["b1"]


def test_near_identical_passages_are_merged_into_the_first():
    def record(i, prompt):
        return {"id": i, "rid": len(i), "prompt": prompt, "response": "sure", "session_id": None}

    passages = [
        passage_of(record("x", "how do I reset my password on the web app today"), "hit", 1, 3),
        passage_of(record("y", "how do I reset my password on the web app today?"), "hit", 2, 3),
        passage_of(record("z", "write a haiku about autumn leaves"), "hit", 3, 3),
    ]
    kept = merge_near_identical(passages, 0.8)
    assert [p.id for p in kept] == ["x", "z"] and kept[0].merged == ["y"]


def test_answer_markers_map_to_citations_and_unknown_ones_are_flagged(searcher):
    ctx = build_context(searcher, "password refund", KEYWORD, scope=Scope.all())
    first, second = ctx.citations[0], ctx.citations[1]
    used, unknown = cited("See [2] and [1, 99]; again [2][ 1 ] and [0].", ctx)
    assert used == [{"n": 2, "id": second["id"]}, {"n": 1, "id": first["id"]}]
    assert unknown == [99, 0]
    assert cited("no markers here", ctx) == ([], [])


def test_context_recall_counts_judged_records_in_the_context(searcher):
    ctx = build_context(searcher, "reset my password", KEYWORD, scope=Scope.all())
    assert context_recall(ctx, {"a1", "a2"}) == 1.0
    assert context_recall(ctx, {"a1", "c1"}) == 0.5
    assert context_recall(ctx, set()) is None


def test_the_retrieval_stage_scores_the_context_pipeline_rag_builds(searcher):
    from pipeline.retrieval.bootstrap import Query
    from pipeline.retrieval.context import context_figures

    found, missed = (
        Query("q1", "reset my password", {"a1": 3.0}),
        Query("q2", "reset my password", {"c1": 3.0}),
    )
    figures, took = context_figures(searcher, [found, missed], KEYWORD, 1.0)
    ctx = build_context(searcher, "reset my password", KEYWORD, scope=Scope.all())
    assert figures == {"context_recall": 0.5, "context_tokens": float(ctx.tokens)}
    assert set(took) == {"p50", "p95", "p99"}
    # A budget with room for one passage only: the relevant second hit is left out.
    tight = dataclasses.replace(KEYWORD, budget_tokens=_independent_count(ctx.prompt) // 2)
    second = Query("q3", "reset my password", {ctx.citations[1]["id"]: 3.0})
    assert context_figures(searcher, [second], tight, 1.0)[0]["context_recall"] == 0.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"template": "{context} only"}, "rag.template: must contain"),
        ({"passage": "{n} {nope}"}, "rag.passage: unknown field"),
        ({"budget_tokens": 0}, "rag.budget_tokens"),
        ({"mode": "fuzzy"}, "rag.mode"),
    ],
)
def test_bad_settings_name_the_key(change, message):
    with pytest.raises(UserInputError, match=re.escape(message)):
        dataclasses.replace(KEYWORD, **change)
    with pytest.raises(UserInputError, match="unknown key"):
        RagSettings.from_cfg({"budget": 3})


def _params_with_rag(project, root, rag: dict) -> str:
    path = write_params(project, root)
    params = yaml.safe_load(path.read_text())
    params.update(search={}, embed={}, rag=rag)
    path.write_text(yaml.safe_dump(params))
    return str(path)


def test_cli_prints_json_and_rejects_a_blank_question(project, tmp_path):
    params = _params_with_rag(project, tmp_path, {"mode": "keyword", "budget_tokens": 120})
    cmd = [sys.executable, "-m", "pipeline", "rag", "--params", params]
    done = subprocess.run([*cmd, "reset my password", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert {"context", "citations", "tokens", "dropped", "prompt"} <= set(out)
    assert out["tokens"] <= 120 and out["citations"][0]["id"] == "a1"
    blank = subprocess.run([*cmd, "   "], capture_output=True, text=True)
    assert blank.returncode == 2 and "empty question" in blank.stderr
    broken = subprocess.run(
        [*cmd, "password", "--generate"], capture_output=True, text=True
    )  # no generator configured: a config error, not a crash
    assert broken.returncode == 2 and "rag.generator.base_url" in broken.stderr


def test_http_rag_is_for_reader_keys_within_their_scope(project):
    config = dataclasses.replace(
        project,
        rag={"mode": "keyword", "generator": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}},
    )
    reader = create_key(config.paths.service_db, "reader", "r")[0]
    scoped = create_key(config.paths.service_db, "reader", "s", {"user_id": ["bob"]})[0]
    with TestClient(create_app(config)) as client:
        post = lambda body, key=reader: client.post(  # noqa: E731
            "/rag", json=body, headers={"Authorization": f"Bearer {key}"}
        )
        ok = post({"question": "reset my password", "budget": 200})
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["citations"][0]["id"] == "a1" and body["tokens"] <= 200
        mine = post({"question": "password refund", "k": 5}, scoped).json()
        assert {c["id"] for c in mine["citations"]} <= {"b1", "b2"}
        assert post({"question": "  "}).status_code == 422
        assert post({"question": "x", "budget": 0}).status_code == 422
        assert post({"question": "x", "oops": 1}).status_code == 422
        assert client.post("/rag", json={"question": "password"}).status_code == 401
        down = post({"question": "password", "generate": True})  # nothing listens on port 9
        assert down.status_code == 502 and "127.0.0.1:9" in down.json()["detail"]


def test_http_rag_is_logged_with_a_query_id_its_citations_can_be_judged_by(project):
    from pipeline.store.service import logged_query, open_service_db

    config = dataclasses.replace(project, rag={"mode": "keyword"})
    db = config.paths.service_db
    reader, writer = (create_key(db, role, role)[0] for role in ("reader", "writer"))
    with TestClient(create_app(config)) as client:
        asked = client.post(
            "/rag", json={"question": "reset my password, I am jo@example.com", "k": 3,
                          "filters": ["label=support"]},
            headers={"Authorization": f"Bearer {reader}"},
        )  # fmt: skip
        assert asked.status_code == 200, asked.text
        body = asked.json()
        query_id, cited = body["query_id"], [c["id"] for c in body["citations"]]
        assert query_id and cited[0] == "a1"
        grade = lambda record, g: client.post(  # noqa: E731
            "/judgments", json={"query_id": query_id, "grades": [{"record_id": record,
                                                                  "grade": g}]},
            headers={"Authorization": f"Bearer {writer}"},
        )  # fmt: skip
        assert grade("a1", 3).status_code == 201  # a cited record: what the caller was shown
        refused = grade("b1", 1)  # never retrieved for this question
        assert refused.status_code == 400 and "not among" in refused.text
        failed = client.post(
            "/rag", json={"question": "x", "filters": ["nope=1"]},
            headers={"Authorization": f"Bearer {reader}"},
        )  # fmt: skip
        assert failed.status_code in (400, 422)
    with open_service_db(db, read_only=True) as con:  # the service flushed its log on exit
        row = logged_query(con, query_id)
        statuses = [r[0] for r in con.execute("SELECT status FROM query_log").fetchall()]
    assert row["mode"] == "rag:keyword" and row["k"] == 3 and row["filters"] == ["label=support"]
    assert row["text"] == "reset my password, I am <EMAIL>"  # redacted as searches are
    assert row["result_rids"] == [c["rid"] for c in body["citations"]]
    assert sorted(statuses) == [200, failed.status_code]


def test_a_byte_level_bpe_tokenizer_from_a_path_keeps_the_budget_exact(searcher, tmp_path):
    """GPT-style byte-level BPE merges across passage boundaries, unlike WordPiece: the
    packer's summed counts may be off, and the final exact count must still hold."""
    from helpers.serve import ROWS
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [f"[{n}] Q: {row[1]}\nA: {row[2]}\n\n" for n, row in enumerate(ROWS, 1)] * 5
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, min_frequency=1))
    path = tmp_path / "tokenizer.json"
    bpe.save(str(path))
    settings = dataclasses.replace(KEYWORD, tokenizer=str(path))
    for budget in (90, 120, 160, 240, 400):
        ctx = build_context(searcher, "password refund parcel", settings, scope=Scope.all(),
                            budget=budget)  # fmt: skip
        assert ctx.tokenizer == str(path)
        assert ctx.tokens == len(bpe.encode(ctx.prompt, add_special_tokens=False).ids) <= budget
