"""Erasure under the writer lock and as a journal: a busy writer makes an erase wait (bounded,
then nothing erased, exit 4 / HTTP 503); a killed erase leaves a pending entry that
`pipeline erase --status` lists and the next writer or service start completes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from helpers.serve import build_index, build_store, write_params

from pipeline.api.app import create_app
from pipeline.errors import BusyError
from pipeline.io.lock import exclusive
from pipeline.service.erasure import erase_user
from pipeline.service.keys import create_key
from pipeline.store import service as service_db

REPO = Path(__file__).resolve().parent.parent
ALICE = hashlib.sha256(b"alice").hexdigest()
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _alice_rows(config) -> int:
    con = duckdb.connect()
    con.execute("ATTACH ? AS s (READ_ONLY)", [str(config.paths.store)])
    try:
        kept = con.execute("SELECT count(*) FROM s.records WHERE user_id = 'alice'").fetchone()
    finally:
        con.close()
    parquet = pq.read_table(config.paths.records)["user_id"].to_pylist().count("alice")
    return kept[0] + parquet


def _cli(params: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args, "--params", str(params)],
        capture_output=True, text=True, env=ENV, cwd=params.parent, timeout=120, **kwargs,
    )  # fmt: skip


def test_a_busy_writer_makes_erase_wait_then_give_up_with_nothing_erased(tmp_path: Path) -> None:
    config = build_store(tmp_path)
    params = write_params(config, tmp_path)
    holders: list[str] = []
    with exclusive(config.paths.writer_lock, "pipeline dedup"):
        with pytest.raises(BusyError, match="nothing was erased yet"):
            erase_user(config.paths, "alice", "test", wait=0.2, on_wait=holders.append)
        cli = _cli(params, "erase", "--user-id", "alice", "--wait", "0.2")
        admin, _ = create_key(config.paths.service_db, "admin")
        with TestClient(create_app(config)) as client:
            response = client.post(
                "/erase", json={"user_id": "alice"}, headers={"Authorization": f"Bearer {admin}"}
            )
    assert holders == [f"`pipeline dedup` (pid {os.getpid()})"]
    assert cli.returncode == 4, cli.stderr
    # Said at once, before waiting, and plainly at the end.
    waiting, *_, error = cli.stderr.strip().splitlines()
    assert "waiting up to 0.2 s for `pipeline dedup`" in waiting
    assert error.startswith("error: ") and "nothing was erased yet" in error
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "nothing was erased yet" in response.json()["detail"]
    assert _alice_rows(config) == 4
    assert not config.paths.erasures.exists()
    assert not list(config.paths.erasure_journal.glob("*"))


def test_erase_waits_for_the_writer_then_erases(tmp_path: Path) -> None:
    config = build_store(tmp_path)
    waiting, release, held = threading.Event(), threading.Event(), threading.Event()

    def dedup() -> None:
        with exclusive(config.paths.writer_lock, "pipeline dedup"):
            held.set()
            waiting.wait(10)
            release.wait(10)

    holder = threading.Thread(target=dedup)
    holder.start()
    assert held.wait(10)

    def on_wait(who: str) -> None:
        waiting.set()
        release.set()  # the "dedup" finishes once the erase is known to wait for it

    row = erase_user(config.paths, "alice", "test", wait=30, on_wait=on_wait)
    holder.join(10)
    assert waiting.is_set() and row["records"] == 2 and _alice_rows(config) == 0


KILL_POINTS = [
    "erase:intent", "erase:listed", "erase:planned", "erase:store", "erase:parquet_rows",
    "erase:index_removed", "erase:mistakes",
]  # fmt: skip


def _killed_erase(params: Path, point: str) -> None:
    """Run `pipeline erase --user-id alice` and kill -9 it at `point`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "erase", "--user-id", "alice", "--params", str(params)],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={**ENV, "PIPELINE_PAUSE_AT": point}, cwd=params.parent,
    )  # fmt: skip
    try:
        line = proc.stderr.readline()
        assert line.startswith(f"paused at {point}"), line
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_killed_erase_is_listed_and_completed_by_the_next_writer(
    tmp_path: Path, point: str
) -> None:
    config = build_store(tmp_path)
    build_index(config)
    params = write_params(config, tmp_path)
    _killed_erase(params, point)

    status = _cli(params, "erase", "--status", "--json")
    assert status.returncode == 1, status.stderr
    [entry] = json.loads(status.stdout)
    assert entry["user_hash"] == ALICE and "alice" not in status.stdout
    assert entry["requested_by"].startswith("cli:")
    # Its entry is private and holds the raw id; nothing else does.
    [path] = config.paths.erasure_journal.glob("*.json")
    assert path.stat().st_mode & 0o777 == 0o600

    # The next writer completes it: here another user's erasure, or a service's start.
    if KILL_POINTS.index(point) % 2:
        assert _cli(params, "erase", "--user-id", "carol").returncode == 0
    else:
        with TestClient(create_app(config)):
            pass
    assert _cli(params, "erase", "--status").returncode == 0
    assert _alice_rows(config) == 0
    verify = subprocess.run(
        [sys.executable, "-m", "pipeline", "index", "verify", "--root", str(tmp_path)],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout
    with service_db.open_service_db(config.paths.service_db) as con:
        audits = [r for r in service_db.list_erasures(con) if r["user_hash"] == ALICE]
    assert len(audits) == 1 and audits[0]["records"] == 2
    assert config.paths.erasures.read_text().split().count(ALICE) == 1
    assert not list(tmp_path.rglob("*.tmp"))  # no copy of the store left behind
