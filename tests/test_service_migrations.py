"""data/service.duckdb has a schema version and forward migrations: a file written before
versioning opens, migrates and keeps every row and value; a newer file is refused; a failed
migration leaves the file as it was."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from helpers.serve import build_store, write_params

from pipeline.cli import main
from pipeline.errors import PipelineError, UserInputError
from pipeline.service.feedback import feedback_scores
from pipeline.service.keys import KeyCache, list_keys
from pipeline.service.querylog import usage_report
from pipeline.store import service as service_db
from pipeline.store.service_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
    migrate,
    schema_version,
)

MAIN_SCHEMA = Path(__file__).parent / "data" / "service_schema_main.sql"
TABLES = ("api_keys", "feedback", "query_log", "erasures")
ADDED_COLUMNS = {"query_log": ("query_id",)}  # by later migrations (v3: judged queries)
BOT_KEY = "pk_0a1b2c3d4e5f_migration-test-secret"  # its hash is in the fixture


def _main_era_file(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute(MAIN_SCHEMA.read_text(encoding="utf-8"))
    con.close()


def _snapshot(path: Path) -> dict:
    """Every table's column types and rows, as Arrow (exact values, timestamps included)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            t: (
                con.execute(f"DESCRIBE {t}").fetchall(),
                con.sql(f"SELECT * FROM {t} ORDER BY ALL").to_arrow_table(),
            )
            for t in TABLES
        }
    finally:
        con.close()


def test_a_file_from_before_versioning_migrates_and_keeps_every_row(tmp_path):
    db = tmp_path / "service.duckdb"
    _main_era_file(db)
    before = _snapshot(db)
    assert all(len(rows) for _, rows in before.values())

    with service_db.open_service_db(db) as con:
        assert schema_version(con) == SCHEMA_VERSION
        stamped = con.execute("SELECT version, description FROM schema_version").fetchall()
    assert [v for v, _ in stamped] == list(range(1, SCHEMA_VERSION + 1))
    after = _snapshot(db)
    for table in TABLES:
        added = ADDED_COLUMNS.get(table, ())
        old_columns = len(before[table][0])
        assert after[table][0][:old_columns] == before[table][0], f"{table}: columns changed"
        assert [c[0] for c in after[table][0][old_columns:]] == list(added), table
        rows = after[table][1]
        assert rows.drop_columns(list(added)).equals(before[table][1]), f"{table}: rows changed"
        assert all(rows[name].null_count == len(rows) for name in added)  # unknown before

    # The migrated file works with today's code: keys, feedback (its sequence goes on),
    # the query log report.
    assert KeyCache(db).authenticate(BOT_KEY).name == "bot"
    assert [k["key_id"] for k in list_keys(db)] == ["deadbeef0001", "0a1b2c3d4e5f", "aa11bb22cc33"]
    with service_db.open_service_db(db) as con:
        row = {"record_id": "c1", "rid": 7, "key_id": "k", "key_name": "n", "kind": "up",
               "score": 1.0, "raw_score": None, "comment": None}  # fmt: skip
        feedback_id, _ = service_db.insert_feedback(con, row)
    assert feedback_id == 4
    assert feedback_scores(db)["a1"].count == 2
    assert usage_report(db)["queries"] == 3


def test_the_cli_opens_a_file_from_before_versioning(tmp_path, capsys):
    config = build_store(tmp_path)
    _main_era_file(config.paths.service_db)
    params = write_params(config, tmp_path)
    assert main(["keys", "list", "--json", "--params", str(params)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {k["name"] for k in listed} == {"bot", "app für Zoë", "ops"}


def test_a_newer_file_is_refused_with_exit_2(tmp_path, capsys):
    config = build_store(tmp_path)
    db = config.paths.service_db
    _main_era_file(db)
    con = duckdb.connect(str(db))
    migrate(con, db)
    con.execute("INSERT INTO schema_version VALUES (?, 'from the future', now())",
                [SCHEMA_VERSION + 1])  # fmt: skip
    con.close()
    before = _snapshot(db)
    newer = f"schema version {SCHEMA_VERSION + 1} is newer"
    with pytest.raises(UserInputError, match=newer), service_db.open_service_db(db):
        pass
    params = write_params(config, tmp_path)
    assert main(["keys", "list", "--params", str(params)]) == 2
    assert "upgrade prompt-pipeline" in capsys.readouterr().err
    after = _snapshot(db)
    assert all(after[t][1].equals(before[t][1]) for t in TABLES)


def test_migrations_apply_in_order_and_a_failed_one_changes_nothing(tmp_path):
    db = tmp_path / "service.duckdb"
    _main_era_file(db)
    next_version = SCHEMA_VERSION + 1
    add_note = Migration(
        next_version,
        "a note on each key",
        (
            "ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS note VARCHAR",
            "UPDATE api_keys SET note = 'from ' || created_by WHERE note IS NULL",
        ),
    )
    broken = Migration(
        next_version + 1,
        "a statement that fails half-way",
        (
            "CREATE TABLE IF NOT EXISTS half_done (x INTEGER)",
            "UPDATE api_keys SET note = NULL",
            "SELECT * FROM no_such_table",
        ),
    )
    con = duckdb.connect(str(db))
    try:
        assert migrate(con, db, (*MIGRATIONS, add_note)) == list(range(1, next_version + 1))
        assert migrate(con, db, (*MIGRATIONS, add_note)) == []  # nothing pending: no-op
        notes = con.execute("SELECT note FROM api_keys ORDER BY key_id").fetchall()
        with pytest.raises(
            PipelineError, match=rf"migration to schema version {next_version + 1} .* rolled back"
        ):
            migrate(con, db, (*MIGRATIONS, add_note, broken))
        assert schema_version(con) == next_version
        assert con.execute("SELECT note FROM api_keys ORDER BY key_id").fetchall() == notes
        assert notes[0] == ("from cli:ops",)
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert "half_done" not in tables
    finally:
        con.close()


def test_every_shipped_migration_is_idempotent(tmp_path):
    """Running a migration's statements again on a migrated file changes nothing."""
    db = tmp_path / "service.duckdb"
    _main_era_file(db)
    with service_db.open_service_db(db):
        pass
    before = _snapshot(db)
    con = duckdb.connect(str(db))
    try:
        for migration in MIGRATIONS:
            for statement in migration.statements:
                con.execute(statement)
    finally:
        con.close()
    after = _snapshot(db)
    assert all(after[t][1].equals(before[t][1]) for t in TABLES)


def test_versions_must_be_consecutive(tmp_path):
    con = duckdb.connect()
    try:
        gap = (*MIGRATIONS, Migration(SCHEMA_VERSION + 2, "skips one", ()))
        with pytest.raises(ValueError, match="1, 2, 3"):
            migrate(con, tmp_path / "x.duckdb", gap)
    finally:
        con.close()


def test_a_new_file_starts_at_the_current_version(tmp_path):
    db = tmp_path / "service.duckdb"
    assert list_keys(db) == []
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert schema_version(con) == SCHEMA_VERSION
    finally:
        con.close()
