"""Encryption at rest (pipeline/store/crypt.py) on real DuckDB files: the store and the
service database are encrypted when PIPELINE_DB_KEY is set, every opener reads them, and a
missing or wrong key is a one-line error (exit 2) that never shows the key.

DuckDB 2.0 writes encrypted files only with httpfs's OpenSSL, which is not installed here,
so the writing tests opt in to DuckDB's mbedTLS writer (PIPELINE_DB_INSECURE_WRITES=1);
`test_writing_without_a_secure_writer_is_refused` checks the refusal without it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import httpx
import pytest
from helpers.serve import build_index, build_store, start_serve, stop_process, write_params
from test_dedup_stage import TINY, make_cfg, write_jsonl

from pipeline.cli import main as cli_main
from pipeline.errors import BusyError, UserInputError
from pipeline.store import crypt
from pipeline.store.db import connect, open_snapshot, snapshot_cursor
from pipeline.store.erasure import copy_without_user, user_rows
from pipeline.store.service import insert_feedback, list_keys, open_service_db
from pipeline.store.service_erasure import compact_into_fresh_file

REPO = Path(__file__).resolve().parent.parent
KEY = "correct horse battery staple 7f3a"
MARKER = "plaintext-marker-5b1e"


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(crypt.KEY_ENV, KEY)
    monkeypatch.setenv(crypt.INSECURE_WRITES_ENV, "1")
    return KEY


def _write(path: Path) -> None:
    con = connect(path, read_only=False)
    con.execute(f"CREATE TABLE records AS SELECT '{MARKER}' || range AS s FROM range(500)")
    con.execute("CHECKPOINT")
    con.close()


def _refusal(path: Path) -> str:
    with pytest.raises(UserInputError) as info:
        connect(path).close()
    assert info.value.exit_code == 2
    message = str(info.value)
    assert str(path) in message and crypt.KEY_ENV in message and KEY not in message
    return message


def test_every_file_is_opened_through_the_key_aware_openers() -> None:
    """A new `duckdb.connect(path)` or ATTACH would open an encrypted file without its key."""
    allowed = {"store/db.py", "store/crypt.py", "store/encrypt_file.py"}
    bypass = re.compile(r"duckdb\.connect\(\s*[^)\s]|ATTACH ")
    found = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in sorted((REPO / "pipeline").rglob("*.py"))
        if path.relative_to(REPO / "pipeline").as_posix() not in allowed
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if bypass.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == []


def test_without_a_key_files_are_plain_as_before(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(crypt.KEY_ENV, raising=False)
    path = tmp_path / "store.duckdb"
    _write(path)
    assert MARKER.encode() in path.read_bytes()
    with duckdb.connect(str(path), read_only=True) as con:  # any DuckDB reads it
        assert con.execute("SELECT count(*) FROM records").fetchone() == (500,)


def test_a_key_encrypts_the_file_and_every_opener_reads_it(tmp_path: Path, keyed: str) -> None:
    path = tmp_path / "store.duckdb"
    _write(path)
    assert MARKER.encode() not in path.read_bytes()
    with connect(path) as con:
        assert con.execute("SELECT count(*) FROM records").fetchone() == (500,)
        assert con.execute("SELECT current_database()").fetchone() == ("store",)
    snapshot = open_snapshot(path)
    try:
        cursor = snapshot_cursor(snapshot)
        assert cursor.execute("SELECT count(*) FROM records").fetchone() == (500,)
    finally:
        snapshot.close()
    with pytest.raises(duckdb.Error, match="without a key"):  # plain DuckDB cannot read it
        duckdb.connect(str(path), read_only=True)


def test_missing_wrong_and_unexpected_keys_are_one_line_errors(
    tmp_path: Path, keyed: str, monkeypatch
) -> None:
    encrypted, plain = tmp_path / "enc.duckdb", tmp_path / "plain.duckdb"
    _write(encrypted)
    monkeypatch.delenv(crypt.KEY_ENV)
    _write(plain)
    assert "is encrypted; set PIPELINE_DB_KEY" in _refusal(encrypted)
    with pytest.raises(UserInputError, match="is encrypted"):
        open_snapshot(encrypted)
    monkeypatch.setenv(crypt.KEY_ENV, "not the key")
    assert "not the key this file was encrypted with" in _refusal(encrypted)
    monkeypatch.setenv(crypt.KEY_ENV, KEY)
    assert "is set but the file is not encrypted" in _refusal(plain)


def test_writing_without_a_secure_writer_is_refused(tmp_path: Path, keyed: str, monkeypatch):
    monkeypatch.delenv(crypt.INSECURE_WRITES_ENV)
    path = tmp_path / "store.duckdb"
    with pytest.raises(UserInputError, match="needs DuckDB's httpfs extension") as info:
        connect(path, read_only=False)
    assert info.value.exit_code == 2 and KEY not in str(info.value)
    assert not path.exists()  # refused before DuckDB created anything


def test_an_encrypted_file_held_by_a_writer_is_busy_and_a_replaced_one_is_reread(
    tmp_path: Path, keyed: str
) -> None:
    store = tmp_path / "store.duckdb"
    _write(store)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pipeline.store.db import connect; "
         f"c = connect({str(store)!r}, read_only=False); print('ok', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(BusyError, match="in use by another process"):
            connect(store, read_only=False)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    old = open_snapshot(store)
    new = tmp_path / "new.duckdb"
    con = connect(new, read_only=False)
    con.execute("CREATE TABLE records AS SELECT 'new' AS s")
    con.close()
    os.replace(new, store)  # publish by rename, as the dedup stage does
    fresh = open_snapshot(store)
    try:
        assert snapshot_cursor(old).execute("SELECT count(*) FROM records").fetchone() == (500,)
        assert snapshot_cursor(fresh).execute("SELECT s FROM records").fetchall() == [("new",)]
    finally:
        old.close()
        fresh.close()


def test_service_db_compaction_and_store_erasure_stay_encrypted(tmp_path: Path, keyed: str) -> None:
    db = tmp_path / "service.duckdb"
    with open_service_db(db) as con:  # created and migrated through the encrypted opener
        row = {"rid": 7, "key_id": "k", "key_name": "n", "raw_score": 1.0, "comment": None}
        insert_feedback(con, {**row, "record_id": MARKER, "kind": "thumb", "score": 1.0})
        compact_into_fresh_file(con, db)  # the erasure's temp file + rename
    assert MARKER.encode() not in db.read_bytes()
    with open_service_db(db) as con:
        assert list_keys(con) == []
        assert con.execute("SELECT record_id FROM feedback").fetchall() == [(MARKER,)]

    store = tmp_path / "store.duckdb"
    config = build_store(tmp_path)  # the service tests' store, written with the key
    os.replace(config.paths.store, store)
    assert user_rows(store, "alice").ids == ["a1", "a1-dup", "a2"]
    copy_without_user(store, tmp_path / "erased.duckdb", "alice", "digest")
    with connect(tmp_path / "erased.duckdb") as con:
        assert con.execute("SELECT count(*) FROM records WHERE user_id = 'alice'").fetchone() == (
            0,
        )
    with pytest.raises(duckdb.Error, match="without a key"):
        duckdb.connect(str(tmp_path / "erased.duckdb"), read_only=True)


def test_db_encrypt_turns_a_plain_file_into_an_encrypted_one(
    tmp_path: Path, keyed: str, monkeypatch, capsys
) -> None:
    path = tmp_path / "service.duckdb"
    monkeypatch.delenv(crypt.KEY_ENV)
    _write(path)
    assert cli_main(["db", "encrypt", str(path)]) == 2  # no key to encrypt with
    monkeypatch.setenv(crypt.KEY_ENV, KEY)
    assert cli_main(["db", "encrypt", str(path)]) == 0
    assert MARKER.encode() not in path.read_bytes()
    with connect(path) as con:
        assert con.execute("SELECT count(*) FROM records").fetchone() == (500,)
    assert cli_main(["db", "encrypt", str(path)]) == 2
    assert "already encrypted" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp"))


def test_dedup_stage_and_cli_readers_on_an_encrypted_store(
    tmp_path: Path, keyed: str, monkeypatch, capsys
) -> None:
    write_jsonl(tmp_path / "raw" / "a.jsonl", TINY)
    mlflow_db = tmp_path / "mlflow.db"
    make_cfg(tmp_path, tmp_path / "raw", f"sqlite:///{mlflow_db}")
    args = ["dedup", "--root", str(tmp_path), "--set", "dedup.near.enabled=false"]
    assert cli_main(args) == 0
    store = tmp_path / "data" / "dedup" / "store.duckdb"
    with pytest.raises(duckdb.Error, match="without a key"):
        duckdb.connect(str(store), read_only=True)
    assert cli_main(["records", "show", "a", "--root", str(tmp_path)]) == 0
    assert "status: duplicate" in capsys.readouterr().out
    assert cli_main(["records", "stats", "--root", str(tmp_path), "--json"]) == 0
    # The key is in no file the stage wrote: params, reports, MLflow's store, the outputs.
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".jsonl"]
    assert mlflow_db in written and (tmp_path / "params.yaml") in written
    assert not [p for p in written if KEY.encode() in p.read_bytes()]
    # Another process: without the key, or with a wrong one, exit 2 and one line.
    env = {k: v for k, v in os.environ.items() if k != crypt.KEY_ENV}
    for extra in ({}, {crypt.KEY_ENV: "wrong"}):
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", "records", "show", "a", "--root", str(tmp_path)],
            capture_output=True, text=True, env={**env, **extra, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and str(store) in proc.stderr
        assert "Traceback" not in proc.stderr and KEY not in proc.stderr


def test_erase_cli_on_encrypted_files_keeps_them_encrypted(tmp_path: Path, keyed: str, capsys):
    import json

    from fastapi.testclient import TestClient

    from pipeline.api.app import create_app
    from pipeline.service.keys import create_key

    config = build_store(tmp_path)
    build_index(config)
    params = write_params(config, tmp_path)
    reader = create_key(config.paths.service_db, "reader")[0]
    headers = {"Authorization": f"Bearer {reader}"}

    def found(client: TestClient) -> list[str]:
        body = {"text": "refund parcel", "mode": "keyword", "k": 10}
        response = client.post("/search", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["results"]]

    with TestClient(create_app(config)) as client:
        assert "b1" in found(client)
    assert cli_main(["erase", "--user-id", "bob", "--json", "--params", str(params)]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 2
    for path in (config.paths.store, config.paths.service_db):
        with pytest.raises(duckdb.Error, match="without a key"):
            duckdb.connect(str(path), read_only=True)
    with TestClient(create_app(config)) as client:
        assert "b1" not in found(client)


@pytest.mark.slow
def test_service_searches_and_writes_feedback_on_encrypted_files(
    tmp_path: Path, keyed: str
) -> None:
    from pipeline.service.keys import create_key

    config = build_store(tmp_path)
    build_index(config)
    params = write_params(config, tmp_path)
    reader = create_key(config.paths.service_db, "writer", "w")[0]
    for path in (config.paths.store, config.paths.service_db):
        with pytest.raises(duckdb.Error, match="without a key"):
            duckdb.connect(str(path), read_only=True)
    proc, url, log = start_serve(params, tmp_path)
    try:
        headers = {"Authorization": f"Bearer {reader}"}
        found = httpx.post(url + "/search", headers=headers, timeout=60,
                           json={"text": "refund parcel", "mode": "keyword", "k": 3})  # fmt: skip
        assert found.status_code == 200, found.text
        assert found.json()["results"][0]["id"] == "b1"
        record = httpx.get(url + "/records/a1", headers=headers, timeout=60)
        assert record.status_code == 200, record.text
        assert record.json()["record"]["prompt"].startswith("how do I")
        feedback = httpx.post(url + "/feedback", headers=headers, timeout=60,
                              json={"record_id": "b1", "thumb": "up"})  # fmt: skip
        assert feedback.status_code == 201, feedback.text
    finally:
        stop_process(proc)
    assert KEY not in log.read_text()
    with open_service_db(config.paths.service_db) as con:
        assert con.execute("SELECT record_id FROM feedback").fetchall() == [("b1",)]
