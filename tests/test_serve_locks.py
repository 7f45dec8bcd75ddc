"""The service DB is shared by the server and the CLI (separate processes): a holder of its
lock makes the others wait, then fail with BusyError; a query log batch is never lost."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from pipeline.errors import BusyError
from pipeline.service.keys import create_key, list_keys
from pipeline.service.querylog import QueryLog, usage_report
from pipeline.store import service as service_db

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold(path, seconds):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_held_lock_is_waited_for_then_reported(tmp_path):
    db = tmp_path / "service.duckdb"
    create_key(db, "reader")  # creates the file and its tables
    holder = _hold(db, 1.0)
    try:
        with (
            pytest.raises(BusyError, match="in use by another process"),
            service_db.open_service_db(db, lock_timeout=0.2),
        ):
            pass
        started = time.monotonic()
        with service_db.open_service_db(db, lock_timeout=10) as con:
            assert len(service_db.list_keys(con)) == 1
        assert time.monotonic() - started > 0.3  # it waited for the holder
    finally:
        holder.wait(timeout=10)
    assert len(list_keys(db)) == 1


def test_query_log_batch_survives_a_busy_flush(tmp_path):
    db = tmp_path / "service.duckdb"
    create_key(db, "reader")
    log = QueryLog(db, lock_timeout=0.1)
    log.record("k1", "bot", "hello", [], "hybrid", 10, [1, 2], 3.5)
    holder = _hold(db, 1.0)
    try:
        with pytest.raises(BusyError):
            log.flush()
        log.record("k1", "bot", "again", ["label=x"], "vector", 5, [], 2.0)
        assert log.pending() == 2
    finally:
        holder.wait(timeout=10)
    assert log.flush() == 2 and log.pending() == 0
    report = usage_report(db)
    assert report["queries"] == 2 and report["zero_result_queries"] == 1
