"""Every place an erasure must reach, one test each: rejected raw lines of any format, users
with only rejected rows, the keyword vocabulary, the feedback snapshot, the query log (and
the service DB file's bytes), the mistakes report and MLflow table, the embedding cache."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
from helpers.serve import _rid, build_index, build_store

from pipeline.embed.cache import EmbeddingCache
from pipeline.index.keyword import build_terms, load_terms
from pipeline.service.erasure import erase_user
from pipeline.service.feedback import add_feedback, write_feedback_scores
from pipeline.service.keys import Principal
from pipeline.service.querylog import QueryLog
from pipeline.store import service as service_db
from pipeline.store.scope import Scope


def _rows(store: Path, sql: str) -> list[tuple]:
    con = duckdb.connect()
    con.execute("ATTACH ? AS store (READ_ONLY)", [str(store)])
    con.execute("USE store")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _add_rejected(store: Path, rows: list[tuple]) -> None:
    con = duckdb.connect(str(store))
    try:
        con.executemany(
            "INSERT INTO rejected (file, line, reason, detail, record_id, raw) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    finally:
        con.close()


def test_rejected_raw_lines_of_every_format_are_erased(tmp_path: Path) -> None:
    config = build_store(tmp_path)
    store = config.paths.store
    _add_rejected(
        store,
        [
            ("x.jsonl", 1, "invalid_json", "d", None, '{"user_id": "alice", "prompt": "cut'),
            ("x.csv", 2, "invalid_csv", "d", None, "c9,prompt text,alice,1,extra"),
            ("x.jsonl", 3, "invalid_utf8", "d", None, "alice wrote \\xff here"),
            ("x.jsonl", 4, "invalid_json", "d", None, "by alice."),
            ("x.jsonl", 5, "invalid_json", "d", None, '{"user_id": "olga", "prompt": "cut'),
            ("x.jsonl", 6, "invalid_json", "d", None, "malice, alice-2, alice.b, alice@x"),
        ],
    )
    first = erase_user(config.paths, "alice", "test")
    # The JSON one from build_store and the four above that name alice as a whole token.
    assert first["rejected"] == 5
    assert {line for (line,) in _rows(store, "SELECT line FROM rejected")} == {51, 5, 6}
    # A user with only rejected rows is erased too.
    second = erase_user(config.paths, "olga", "test")
    assert (second["rejected"], second["records"]) == (1, 0)
    assert {line for (line,) in _rows(store, "SELECT line FROM rejected")} == {51, 6}
    # A new file, not one with deleted rows in its free blocks.
    assert b"alice wrote" not in store.read_bytes() and b"cookies" not in store.read_bytes()


def test_rejected_rows_are_found_by_their_stored_user_hash(tmp_path: Path) -> None:
    from pipeline.io.files import user_hash

    config = build_store(tmp_path)
    con = duckdb.connect(str(config.paths.store))
    try:  # a row whose raw text no longer shows the id (cut at 100,000 characters, say)
        con.execute(
            "INSERT INTO rejected VALUES ('x', 9, 'oversize_line', 'd', NULL, '{...', ?)",
            [user_hash("pia")],
        )
    finally:
        con.close()
    assert erase_user(config.paths, "pia", "test")["rejected"] == 1
    assert _rows(config.paths.store, "SELECT count(*) FROM rejected WHERE line = 9") == [(0,)]


def test_keyword_vocabulary_keeps_no_word_only_the_user_wrote(tmp_path: Path) -> None:
    config = build_store(tmp_path)
    build_index(config)
    vocab = config.paths.index_dir / "keyword" / "vocab.txt"
    assert "password" in vocab.read_text().split("\n")  # only alice's a1 has it
    erase_user(config.paths, "alice", "test")
    words = vocab.read_text().split("\n")
    assert "password" not in words and "cookies" not in words and "refund" in words
    # Pruning equals a rebuild over the remaining texts.
    remaining = pq.read_table(config.paths.records, columns=["rid", "prompt"]).sort_by("rid")
    rebuilt = build_terms(remaining["prompt"].to_pylist(), remaining["rid"].to_numpy())
    terms = load_terms(config.paths.index_dir / "keyword")
    assert terms.vocab == rebuilt.vocab
    for name in ("data", "indices", "indptr", "doclen", "rids"):
        np.testing.assert_array_equal(getattr(terms, name), getattr(rebuilt, name))


def test_feedback_snapshot_loses_the_users_records(tmp_path: Path) -> None:
    config = build_store(tmp_path)
    writer = Principal("k1", "w", "writer", Scope.all())
    for rid_s in ("a1", "b1"):
        record = {"id": rid_s, "rid": _rid(rid_s)}
        add_feedback(config.paths.service_db, writer, record, "up")
    assert write_feedback_scores(config.paths.service_db, config.paths.feedback) == 2
    row = erase_user(config.paths, "alice", "test")
    assert row["feedback_snapshot"] == 1
    assert pq.read_table(config.paths.feedback)["id"].to_pylist() == ["b1"]


def test_query_log_text_is_blanked_and_gone_from_the_file(tmp_path: Path) -> None:
    config = build_store(tmp_path)
    db = config.paths.service_db
    log = QueryLog(db)
    secret = "how do I reset my password zebrafinch"
    log.record("k", "n", secret, [], "keyword", 5, [_rid("a1"), _rid("b1")], 1.0)
    log.record("k", "n", "anything", ["user_id=alice"], "keyword", 5, [], 1.0)
    log.record("k", "n", "notes of malice", [], "keyword", 5, [_rid("b1")], 1.0)
    log.flush()
    erase_user(config.paths, "alice", "test")
    # The process's next flush, its first use of the new file, is written.
    log.record("k", "n", "later", [], "keyword", 5, [], 1.0)
    assert log.flush() == 1
    with service_db.open_service_db(db) as con:
        rows = con.execute("SELECT text, filters, result_rids FROM query_log").fetchall()
    assert sorted(rows) == [
        ("", [], []),
        ("", [], [_rid("b1")]),
        ("later", [], []),
        ("notes of malice", [], [_rid("b1")]),
    ]
    data = db.read_bytes()
    assert b"zebrafinch" not in data and b"user_id=alice" not in data
    # The fresh copy is whole: its rows, its schema version, its feedback id sequence.
    from pipeline.store.service_schema import SCHEMA_VERSION, schema_version

    with service_db.open_service_db(db) as con:
        assert len(service_db.list_erasures(con)) == 1
        assert schema_version(con) == SCHEMA_VERSION
        assert con.execute("SELECT count(*) FROM query_log").fetchone()[0] == 4


def test_api_keys_scoped_to_the_user_lose_the_id(tmp_path: Path) -> None:
    from pipeline.service.keys import create_key, list_keys

    config = build_store(tmp_path)
    db = config.paths.service_db
    _, alone = create_key(db, "reader", "alone", {"user_id": ["alice"]})
    _, shared = create_key(db, "reader", "shared", {"user_id": ["alice", "bob"]})
    _, other = create_key(db, "reader", "other", {"user_id": ["bob"]})
    erase_user(config.paths, "alice", "test")
    keys = {k["key_id"]: k for k in list_keys(db)}
    # Alone: revoked (an emptied scope would mean every user), the id replaced by its hash.
    assert keys[alone["key_id"]]["revoked_at"] is not None
    assert keys[alone["key_id"]]["scope_user_ids"][0].startswith("sha256:")
    assert keys[shared["key_id"]]["scope_user_ids"] == ["bob"]
    assert keys[shared["key_id"]]["revoked_at"] is None
    assert keys[other["key_id"]]["scope_user_ids"] == ["bob"]
    assert b"alice" not in db.read_bytes()


def test_mistakes_report_and_mlflow_tables_lose_the_user(tmp_path: Path) -> None:
    import mlflow

    from pipeline.evaluate.mistakes import ARTIFACT
    from pipeline.evaluate.tracking import log_mistakes

    config = build_store(tmp_path)
    mistakes = [
        {"id": i, "text": f"text of {i}", "actual": "a", "predicted": "b",
         "confidence": 0.9, "actual_probability": 0.1}
        for i in ("a1", "b1", "a1-dup")
    ]  # fmt: skip
    report = config.paths.reports / "eval" / "mistakes.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps(mistakes))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("e", artifact_location=(tmp_path / "mlruns").as_uri())
    run_ids = []
    for _ in range(2):
        with mlflow.start_run(experiment_id=exp) as run:
            run_ids.append(run.info.run_id)
        log_mistakes(uri, run.info.run_id, mistakes)
    row = erase_user(config.paths, "alice", "test")
    assert row["mistakes"] == 2 + 2 * 2
    assert [m["id"] for m in json.loads(report.read_text())] == ["b1"]
    tables = sorted((tmp_path / "mlruns").rglob(Path(ARTIFACT).name))
    assert len(tables) == len(run_ids) == 2
    for path in tables:
        table = json.loads(path.read_text())
        assert [r[table["columns"].index("id")] for r in table["data"]] == ["b1"]


def test_embedding_cache_entries_are_deleted_and_tombstoned(tmp_path: Path) -> None:
    config = build_store(tmp_path)
    cache = EmbeddingCache(config.paths.embed_cache, "enc-1", 4)
    alice = ["how do I reset my password", "it still does not work"]
    both = [*alice, "refund for a damaged parcel"]
    cache.add(cache.keys(both), np.ones((3, 4), np.float32), both)
    # Texts embedded as prompt + response count too.
    joined = ["how do I reset my password\nclick forgot password"]
    cache.add(cache.keys(joined), np.ones((1, 4), np.float32), joined)
    row = erase_user(config.paths, "alice", "test")
    assert row["embedding_cache"] == 3
    found, _ = cache.lookup(cache.keys([*both, *joined]))
    assert found.tolist() == [False, False, True, False]
    # A run that embedded alice's text before the erasure and stores it after: dropped.
    late = EmbeddingCache(config.paths.embed_cache, "enc-2", 4)
    late.add(late.keys(alice), np.ones((2, 4), np.float32), alice)
    assert not late.lookup(late.keys(alice))[0].any()


def test_train_input_example_is_not_derived_from_records() -> None:
    from pipeline.train.inputs import InputKind, model_inputs

    for kind, a, b in (
        ("embedding", np.random.default_rng(0).random((5, 6)), np.zeros((5, 6))),
        ("tokens", [np.array([101, 7, 102])] * 3, [np.array([101, 9, 9, 9, 102])] * 3),
    ):
        inputs = model_inputs(InputKind(kind))
        np.testing.assert_array_equal(inputs.example(a), inputs.example(b))
