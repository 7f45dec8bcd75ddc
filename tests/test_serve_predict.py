"""POST /predict on a real champion (a tiny model trained, evaluated and registered into a
real MLflow sqlite store) in a real `pipeline serve` process: validation, logging, feedback,
GET /monitor, a champion swapped under load with no failed request, and planted drift."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from helpers.drift import hh_turns
from helpers.serve import start_serve
from helpers.wait import wait_until
from omegaconf import OmegaConf

from pipeline.service.keys import create_key
from pipeline.service.limits import PREDICT_BATCH_MAX, PREDICT_TEXT_MAX
from pipeline.store import service as service_db
from tests.test_evaluate_stage import VOCAB
from tests.test_predict import TEXTCNN, _trained

WINDOW_SECONDS = 30.0  # long enough for 40 predictions on a loaded 2-core machine
pytestmark = pytest.mark.slow


@dataclass
class Served:
    root: Path
    cfg: Any
    url: str
    keys: dict[str, str]
    proc: Any

    def post(self, path: str, body: Any, role: str = "reader", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=60, **kw)


def _texts(start: int, n: int) -> list[str]:
    """The training records' prompts (tests/test_evaluate_stage.py): the model's own inputs."""
    out = []
    for i in range(start, start + n):
        words = list(VOCAB.values())[i % len(VOCAB)].split()
        out.append(f"please {words[i % 5]} {words[(i * 3) % 5]} now {i}")
    return out


def _promote(cfg: Any, root: Path, version: str) -> None:
    from mlflow import MlflowClient

    from pipeline.predict.settings import PredictSettings

    s = PredictSettings.from_cfg(cfg, root)
    client = MlflowClient(s.tracking_uri, registry_uri=s.tracking_uri)
    client.set_registered_model_alias(s.registered_model, "champion", version)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from pipeline.embed import EmbedSettings
    from pipeline.embed.query import ensure_query_model

    root = tmp_path_factory.mktemp("serve-predict")
    cfg = _trained(root, TEXTCNN)
    ensure_query_model(EmbedSettings(), root / cfg.paths.embed_cache)  # the log's encoder
    _promote(cfg, root, "1")  # the tiny model need not win evaluate's gate to be served here
    params = OmegaConf.to_container(cfg, resolve=True)
    params["serve"].update(port=0, reload_seconds=0.2, key_cache_seconds=0.2, log_flush_seconds=0.2)
    params["monitor"].update(
        window=f"{WINDOW_SECONDS:g}s", min_predictions=20, label_psi_max=10.0, sample_size=60
    )  # the tiny model's label mix is not the test's subject (tests/test_monitor.py is)
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    db = root / cfg.paths.service_db
    keys = {role: create_key(db, role, role)[0] for role in ("reader", "writer", "admin")}
    proc, url, _ = start_serve(root / "params.yaml", root)
    try:
        yield Served(root, cfg, url, keys, proc)
    finally:
        proc.send_signal(signal.SIGINT)  # a clean stop flushes the prediction log
        proc.wait(timeout=60)


def test_predict_answers_with_the_champion_and_logs_every_prediction(served: Served) -> None:
    one = served.post("/predict", {"text": "please refund my parcel now"})
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["model"] == {"name": "prompt-classifier", "version": "1"}
    (p,) = body["predictions"]
    assert p["label"] in {"refund", "translate", "code"}
    assert p["confidence"] == max(p["probabilities"].values())
    assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    batch = served.post("/predict", {"texts": ["translate french words", "python bug " * 300]})
    assert batch.status_code == 200
    assert [q["truncated"] for q in batch.json()["predictions"]] == [False, True]
    ids = [p["prediction_id"]] + [q["prediction_id"] for q in batch.json()["predictions"]]

    # Confirm one, correct another: writer keys only; an unknown id is 404.
    ok = served.post(f"/predictions/{ids[0]}/feedback", {"label": p["label"]}, "writer")
    assert ok.status_code == 201 and ok.json()["correct"] is True
    fix = served.post(f"/predictions/{ids[1]}/feedback", {"label": "code"}, "writer")
    assert fix.status_code == 201
    assert served.post(f"/predictions/{ids[1]}/feedback", {"label": "x"}).status_code == 403
    missing = served.post("/predictions/feedfeed/feedback", {"label": "x"}, "writer")
    assert missing.status_code == 404
    with service_db.open_service_db(served.root / served.cfg.paths.service_db) as con:
        rows = con.execute(
            "SELECT prediction_id, model_version, text, len(embedding) FROM predictions "
            "WHERE list_contains(?, prediction_id)", [ids]
        ).fetchall()  # fmt: skip
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert all(r[1] == "1" and r[2] is None and r[3] == 64 for r in rows)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"text": ""}, "at least 1 character"),
        ({"text": "   "}, "blank"),
        ({"text": "x" * (PREDICT_TEXT_MAX + 1)}, "at most"),
        ({"texts": []}, "at least 1 item"),
        ({"texts": ["a"] * (PREDICT_BATCH_MAX + 1)}, "at most"),
        ({"text": "a", "texts": ["b"]}, "either"),
        ({"text": "a", "k": 3}, "Extra inputs"),
    ],
)
def test_bad_input_is_a_4xx_with_the_reason(served: Served, body: dict, reason: str) -> None:
    response = served.post("/predict", body)
    assert response.status_code == 422
    assert reason in response.text


def test_invalid_utf8_and_lone_surrogates_and_no_key_are_refused(served: Served) -> None:
    headers = {
        "Authorization": f"Bearer {served.keys['reader']}",
        "Content-Type": "application/json",
    }
    raw = httpx.post(served.url + "/predict", content=b'{"text": "caf\xe9"}', headers=headers)
    assert raw.status_code == 400 and raw.json()["detail"]  # the service's answer to bad JSON
    lone = httpx.post(served.url + "/predict", content=b'{"text": "a \\ud800 b"}', headers=headers)
    assert lone.status_code == 422 and "UTF-8" in lone.text
    assert served.post("/predict", {"text": "hi"}, role="").status_code == 401


def test_a_moved_champion_is_swapped_in_with_no_failed_request(served: Served) -> None:
    from mlflow import MlflowClient

    from pipeline.predict.settings import PredictSettings

    s = PredictSettings.from_cfg(served.cfg, served.root)
    client = MlflowClient(s.tracking_uri, registry_uri=s.tracking_uri)
    run_id = client.get_model_version(s.registered_model, "1").run_id
    second = str(
        client.create_model_version(s.registered_model, f"runs:/{run_id}/model", run_id).version
    )
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=60) as http:
            headers = {"Authorization": f"Bearer {served.keys['reader']}"}
            while not stop.is_set():
                r = http.post(served.url + "/predict", json={"text": "python bug"}, headers=headers)
                statuses.append(r.status_code)
                if r.status_code == 200:
                    versions.add(r.json()["model"]["version"])

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: "1" in versions, "requests served by version 1", timeout=60)
        client.set_registered_model_alias(s.registered_model, "champion", second)
        wait_until(lambda: second in versions, f"version {second} served", timeout=120)
        n = len(statuses)
        wait_until(lambda: len(statuses) > n + 20, "more requests on the new version", 60)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert statuses and set(statuses) == {200}


def test_planted_drift_shows_in_the_next_window_of_get_monitor(
    served: Served, hh_rlhf_path: Path
) -> None:
    """A window of prompts like the training records, then a window of hh-rlhf first turns:
    GET /monitor flags the second window only (embedding MMD of the logged projections)."""
    hh = hh_turns(hh_rlhf_path, 40)

    def next_window() -> float:
        # Deadline poll on the clock: wait for the next window boundary (windows are aligned
        # to multiples of their length), so each batch has a window to itself. Not the
        # current window even if it has just begun: the previous test's load may have
        # logged predictions in it (CI once counted 112 in the first window, not 40).
        start = (time.time() // WINDOW_SECONDS + 1) * WINDOW_SECONDS
        wait_until(lambda: time.time() >= start, "a window to begin", WINDOW_SECONDS + 5)
        return start

    first = next_window()
    for i in range(4):
        assert served.post("/predict", {"texts": _texts(10 * i, 10)}).status_code == 200
    assert time.time() < first + WINDOW_SECONDS, "the machine is too slow for these windows"
    second = next_window()
    assert second == first + WINDOW_SECONDS
    for i in range(4):
        assert served.post("/predict", {"texts": hh[10 * i : 10 * i + 10]}).status_code == 200
    assert time.time() < second + WINDOW_SECONDS
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(first))
    until = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second + WINDOW_SECONDS))
    headers = {"Authorization": f"Bearer {served.keys['admin']}"}
    report = httpx.get(
        served.url + "/monitor", params={"since": since, "until": until}, headers=headers,
        timeout=300,
    )  # fmt: skip
    assert report.status_code == 200, report.text
    windows = report.json()["windows"]
    assert [w["predictions"] for w in windows] == [40, 40]
    assert [w["status"] for w in windows] == ["ok", "drift"], [w["reasons"] for w in windows]
    assert report.json()["status"] == "drift"
    assert served.post("/monitor", {}, role="reader").status_code in (403, 405)
