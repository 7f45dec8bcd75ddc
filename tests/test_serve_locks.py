"""The service DB is shared by the server and the CLI (separate processes): a holder of its
lock makes the others wait, then fail with BusyError; a query log batch is never lost; a
request never waits for the file."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from helpers.serve import build_index, build_store
from helpers.wait import wait_until

from pipeline.api.app import create_app
from pipeline.errors import BusyError
from pipeline.service.keys import create_key, list_keys, revoke_key
from pipeline.service.querylog import QueryLog, usage_report
from pipeline.store import service as service_db

HOLD = """
import sys, time, duckdb
deadline = time.monotonic() + 30
while True:  # the server opens the file briefly and often: take it between two opens
    try:
        con = duckdb.connect(sys.argv[1])
        break
    except duckdb.IOException:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.01)
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
con.close()
"""


@contextmanager
def _held(path):
    """Another process holds the DuckDB file until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_a_held_lock_is_waited_for_then_reported(tmp_path):
    db = tmp_path / "service.duckdb"
    create_key(db, "reader")  # creates the file and its tables
    opened, trying = [], threading.Event()

    def wait_for_the_file() -> None:
        trying.set()
        with service_db.open_service_db(db, lock_timeout=60) as con:
            opened.append((time.monotonic(), len(service_db.list_keys(con))))

    with _held(db) as holder:
        with (
            pytest.raises(BusyError, match="in use by another process"),
            service_db.open_service_db(db, lock_timeout=0.2),
        ):
            pass
        waiter = threading.Thread(target=wait_for_the_file)
        waiter.start()
        assert trying.wait(10)
        # Not a sleep that orders anything: while the file is held the waiter cannot open
        # it, so it must still be retrying (not failed, not done) whenever we look.
        waiter.join(0.5)
        assert waiter.is_alive() and not opened
        holder.stdin.close()
        released = time.monotonic()
    waiter.join(60)
    assert [count for _, count in opened] == [1] and opened[0][0] >= released
    assert len(list_keys(db)) == 1


def test_query_log_batch_survives_a_busy_flush(tmp_path):
    db = tmp_path / "service.duckdb"
    create_key(db, "reader")
    log = QueryLog(db, lock_timeout=0.1)
    log.record("k1", "bot", "hello", [], "hybrid", 10, [1, 2], 3.5)
    with _held(db):
        with pytest.raises(BusyError):
            log.flush()
        log.record("k1", "bot", "again", ["label=x"], "vector", 5, [], 2.0)
        assert log.pending() == 2
    assert log.flush() == 2 and log.pending() == 0
    report = usage_report(db)
    assert report["queries"] == 2 and report["zero_result_queries"] == 1


def _search(client, key):
    body = {"text": "refund parcel", "mode": "keyword"}
    return client.post("/search", json=body, headers={"Authorization": f"Bearer {key}"})


def test_requests_never_wait_for_a_busy_service_db(tmp_path):
    """Another process holds data/service.duckdb past the key cache's life: searches are
    answered from the last key set read, while the file is still held; a revocation takes
    effect once the file can be read again."""
    config = build_store(tmp_path)
    build_index(config)
    # Before, a request past the key cache's life waited this long for the file, then 503.
    config = replace(config, serve=replace(config.serve, lock_timeout_seconds=3.0))
    db = config.paths.service_db
    key = create_key(db, "reader")[0]
    doomed, doomed_row = create_key(db, "reader")
    with TestClient(create_app(config)) as client:
        keys = client.app.state.service.keys
        assert _search(client, key).status_code == 200
        with _held(db) as holder:
            wait_until(lambda: keys.age() > 2 * keys.ttl, "the key set to outlive its ttl")
            for caller in (key, doomed):
                assert _search(client, caller).status_code == 200
            assert _search(client, "pk_000000000000_unknown").status_code == 401
            assert holder.poll() is None  # all answered while the file was held
        revoke_key(db, doomed_row["key_id"])
        wait_until(lambda: _search(client, doomed).status_code == 401, "the revocation")
        assert _search(client, key).status_code == 200


def test_a_key_created_by_another_process_works_at_once(tmp_path):
    """Keys are re-read every 300 s here: an unknown key id makes the reader read now."""
    config = build_store(tmp_path)
    build_index(config)
    config = replace(config, serve=replace(config.serve, key_cache_seconds=600.0))
    with TestClient(create_app(config)) as client:
        key = create_key(config.paths.service_db, "reader")[0]  # as `pipeline keys create` does
        assert _search(client, key).status_code == 200
