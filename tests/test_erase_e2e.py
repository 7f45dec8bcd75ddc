"""Erasure end to end with the real stages and the real encoder: dedup -> index -> serve ->
erase -> not found by any mode, not readable, not counted -> dedup and index re-run -> still
gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.api.app import create_app
from pipeline.api.state import ServiceConfig
from pipeline.config import compose
from pipeline.service.keys import create_key
from pipeline.service.settings import ServeSettings, ServicePaths

RAW = [
    {"id": "al-1", "prompt": "How can I bake sourdough bread at home?", "response": "Feed a "
     "starter.", "user_id": "alice", "session_id": "s-al", "turn": 1, "label": "cooking"},
    {"id": "al-2", "prompt": "My sourdough loaf came out flat and dense", "response": "Proof "
     "longer.", "user_id": "alice", "session_id": "s-al", "turn": 2, "label": "cooking"},
    {"id": "bo-1", "prompt": "Which telescope should a beginner astronomer buy?", "response":
     "A dobsonian.", "user_id": "bob", "session_id": "s-bo", "turn": 1, "label": "astronomy"},
    {"id": "bo-2", "prompt": "Explain how the stock market index is computed", "response":
     "Weighted prices.", "user_id": "bob", "label": "finance"},
    {"id": "an-1", "prompt": "Translate thank you very much into Japanese", "response":
     "Arigatou gozaimasu.", "label": "translate"},
]  # fmt: skip
ALICE = {"al-1", "al-2"}


def _search_ids(client, key, text, mode):
    body = {"text": text, "mode": mode, "k": 10}
    response = client.post("/search", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return {r["id"] for r in response.json()["results"]}


@pytest.mark.slow
def test_erased_user_is_gone_from_every_mode_and_stays_gone(tmp_path: Path) -> None:
    from pipeline.stages import dedup, index

    raw = tmp_path / "raw" / "chat.jsonl"
    raw.parent.mkdir()
    raw.write_text("".join(json.dumps(r) + "\n" for r in RAW), encoding="utf-8")
    cfg = compose([f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"])
    cfg.data.path = str(raw.parent)
    assert dedup.run(cfg, tmp_path)["kept"] == 5
    index.run(cfg, tmp_path)

    config = ServiceConfig(
        serve=ServeSettings(reload_seconds=0.2),
        paths=ServicePaths.from_cfg(cfg.paths).under(tmp_path),
        embed=dict(cfg.embed),
        search=dict(cfg.search),
    )
    admin, _ = create_key(config.paths.service_db, "admin")
    queries = [r["prompt"] for r in RAW if r.get("user_id") == "alice"]
    with TestClient(create_app(config)) as client:
        h = {"Authorization": f"Bearer {admin}"}
        for mode in ("vector", "keyword", "hybrid"):
            assert "al-1" in _search_ids(client, admin, queries[0], mode), mode
        assert client.get("/stats", headers=h).json()["records"] == 5

        erased = client.post("/erase", json={"user_id": "alice"}, headers=h).json()
        assert (erased["records"], erased["index_removed"]) == (2, 2)
        for mode in ("vector", "keyword", "hybrid"):
            for text in queries:
                assert not ALICE & _search_ids(client, admin, text, mode), (mode, text)
        for rid_s in ALICE:
            assert client.get(f"/records/{rid_s}", headers=h).status_code == 404
        stats = client.get("/stats", headers=h).json()
        assert stats["records"] == 3 and "cooking" not in stats["by_label"]

    # The next `dvc repro` runs both stages again from data/raw, which still holds alice.
    report = dedup.run(cfg, tmp_path)
    assert report["erased"] == 2 and report["kept"] == 3
    index.run(cfg, tmp_path)
    with TestClient(create_app(config)) as client:
        for mode in ("vector", "keyword", "hybrid"):
            for text in queries:
                assert not ALICE & _search_ids(client, admin, text, mode), (mode, text)
        assert client.get("/records/al-1", headers=h).status_code == 404
        assert client.get("/stats", headers=h).json()["records"] == 3
