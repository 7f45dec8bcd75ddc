"""Does a store or index swap during requests need a gate? Requests run from several threads
while the store is replaced and the index republished again and again (as `dvc repro` and
erasures do); every request must succeed and answer from one whole version of the data.

This test decides the design in pipeline/api/state.py: a swap replaces the searcher's store
connection and index snapshot without closing what requests in flight still read (DuckDB
closes a connection's cursors with it, but not when the connection is merely dropped), so
requests never wait. Closing the old searcher at the swap, without a gate, fails this test
with "Connection already closed"."""

from __future__ import annotations

import os
import threading
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from helpers.serve import ROWS, build_index, build_store
from helpers.wait import wait_until

from pipeline.api.app import create_app
from pipeline.service.keys import create_key

REPUBLISHES = 8
CLIENTS = 4
BASE_IDS = {row[0] for row in ROWS}


@pytest.mark.slow
def test_requests_during_repeated_republishes_all_succeed(tmp_path):
    config = build_store(tmp_path / "live")
    build_index(config)
    key = create_key(config.paths.service_db, "reader", "swap")[0]
    h = {"Authorization": f"Bearer {key}"}
    stop, errors, done = threading.Event(), [], Counter()
    lock = threading.Lock()

    def client_loop(client: TestClient, n: int) -> None:
        bodies = [
            {"text": "refund parcel", "mode": "keyword", "filters": ["source=web"]},
            {"text": "zebra crossing password", "mode": "keyword", "with_session": True},
        ]
        i = 0
        while not stop.is_set():
            i += 1
            try:
                body = bodies[i % 2]
                search = client.post("/search", json=body, headers=h)
                record = client.get("/records/b1", headers=h)
                stats = client.get("/stats", headers=h)
                ids = {r["id"] for r in search.json()["results"]}
                problem = None
                if (search.status_code, record.status_code, stats.status_code) != (200,) * 3:
                    problem = (search.status_code, record.status_code, stats.text[:300])
                elif not ids <= BASE_IDS | {"z9"}:
                    problem = ("unknown ids", ids)
                elif body is bodies[0] and [r["id"] for r in search.json()["results"]][:1] != [
                    "b1"
                ]:
                    problem = ("b1 is not first", search.json()["results"])
                elif stats.json()["records"] not in (len(BASE_IDS), len(BASE_IDS) + 1):
                    problem = ("a store neither before nor after", stats.json()["records"])
            except Exception as exc:  # any failure is the finding
                problem = repr(exc)
            with lock:
                done[n] += 1
                if problem is not None:
                    errors.append(problem)

    with TestClient(create_app(config)) as client:
        service = client.app.state.service
        threads = [threading.Thread(target=client_loop, args=(client, n)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        try:
            for i in range(REPUBLISHES):
                before = sum(done.values())
                fresh = build_store(tmp_path / f"next{i}", extra=i % 2 == 0)
                os.replace(fresh.paths.store, config.paths.store)
                os.replace(fresh.paths.records, config.paths.records)
                build_index(config)
                service.refresh()  # swap now, while the clients are in flight
                # Requests overlap the swap and run on the new data before the next one.
                wait_until(lambda b=before: sum(done.values()) >= b + 2 * CLIENTS, "requests")
        finally:
            stop.set()
            for t in threads:
                t.join(60)
    assert errors == [], errors[:5]
    assert sum(done.values()) >= REPUBLISHES * 2 * CLIENTS
