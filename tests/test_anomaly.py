"""Anomaly scores: the side file joined by record id (records show, records anomalies,
search filters), the autoencoder ranking a planted outlier first, and the stage end to end
with the real encoder, MLflow and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers.search import records_table
from helpers.store import write_records_store

from pipeline.cli import main
from pipeline.config import compose, to_yaml
from pipeline.errors import NotFoundError, UserInputError
from pipeline.search.filters import parse_filter
from pipeline.store.annotations import ANOMALY, SCORE
from pipeline.store.db import open_snapshot, snapshot_cursor
from pipeline.store.records import show
from pipeline.store.scope import Scope
from pipeline.store.search import matching_rids

REPO = Path(__file__).resolve().parent.parent


def _store(root: Path, n: int = 12) -> tuple[Path, pd.DataFrame]:
    """A store of n kept records under root/data/dedup, and its records as a frame."""
    table = records_table(n)
    store = root / "data" / "dedup" / "store.duckdb"
    store.parent.mkdir(parents=True)
    write_records_store(store, table)
    pq.write_table(table, store.parent / "records.parquet")
    return store, table.to_pandas()


def _scores(store: Path, frame: pd.DataFrame, scores: list[float]) -> None:
    """The anomaly stage's side file for these records (the stage is tested below)."""
    path = ANOMALY.under(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": frame["id"], "rid": frame["rid"], SCORE: scores}).to_parquet(path)


def test_filter_parses_anomaly_score_as_a_number() -> None:
    cond = parse_filter("anomaly_score>=0.5")
    assert (cond.field, cond.op, cond.value) == ("anomaly_score", ">=", 0.5)
    with pytest.raises(UserInputError, match="anomaly_score value 'high' is not a number"):
        parse_filter("anomaly_score>=high")
    with pytest.raises(UserInputError, match="not a finite number"):
        parse_filter("anomaly_score>nan")


def test_search_filter_joins_the_side_file_by_id(tmp_path: Path) -> None:
    store, frame = _store(tmp_path)
    conditions = [parse_filter("anomaly_score>=0.5")]
    con = open_snapshot(store)
    # No side file yet: the column reads as NULL, so the filter matches nothing, no error.
    assert len(matching_rids(snapshot_cursor(con), conditions, Scope.all())) == 0
    con.close()

    scores = [i / 10 for i in range(len(frame))]  # records 5.. score >= 0.5
    _scores(store, frame.iloc[::-1], scores[::-1])  # row order must not matter: joined by id
    con = open_snapshot(store)
    cursor = snapshot_cursor(con)  # a cursor sees the view (the searcher's threads use them)
    found = matching_rids(cursor, conditions, Scope.all())
    assert sorted(found.tolist()) == sorted(frame["rid"][5:].tolist())
    both = [*conditions, parse_filter("label=support")]  # ANDed with the store's columns
    assert matching_rids(cursor, both, Scope.all()).tolist() == [frame["rid"][10]]
    scoped = matching_rids(cursor, conditions, Scope.of({"user_id": ("user-6",)}))
    assert scoped.tolist() == [frame["rid"][6]]
    con.close()


def test_records_show_and_anomalies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, frame = _store(tmp_path)
    assert show(store, "rec-3")["record"][SCORE] is None  # no scores yet
    assert main(["records", "anomalies", "--store", str(store)]) == 3  # not found, says why
    assert "no anomaly scores yet" in capsys.readouterr().err

    scores = [0.1, 0.9, 0.3, 0.9, 0.2, 0.05, 0.7, 0.4, 0.6, 0.8, 0.5, 0.0]
    _scores(store, frame, scores)
    assert show(store, "rec-3")["record"][SCORE] == pytest.approx(0.9)
    assert main(["records", "anomalies", "--store", str(store), "--limit", "4", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed] == ["rec-1", "rec-3", "rec-9", "rec-6"]  # ties by rid
    assert [r[SCORE] for r in listed] == pytest.approx([0.9, 0.9, 0.8, 0.7])
    if frame["rid"][1] > frame["rid"][3]:  # equal scores: the smaller rid first
        assert [r["id"] for r in listed][:2] == ["rec-3", "rec-1"]

    # The real CLI in a subprocess: the table for people, and the score in `records show`.
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "records", "show", "rec-9", "--store", str(store)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    assert f"  {SCORE}: 0.8" in out.stdout


def test_anomalies_rejects_a_bad_limit(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["records", "anomalies", "--store", str(store), "--limit", "0"])
    assert exit_info.value.code == 2


def test_bad_settings_name_the_key() -> None:
    from pipeline.anomaly.settings import AnomalySettings

    section = dict(compose().anomaly)
    with pytest.raises(UserInputError, match=r"anomaly\.epochs"):
        AnomalySettings.from_cfg({**section, "epochs": 0}, seed=1)
    with pytest.raises(UserInputError, match=r"anomaly\.net"):
        AnomalySettings.from_cfg({k: v for k, v in section.items() if k != "net"}, seed=1)


def test_missing_records_is_not_found(tmp_path: Path) -> None:
    from pipeline.stages.anomaly import run

    with pytest.raises(NotFoundError, match=r"records\.parquet"):
        run(compose(), tmp_path)


@pytest.mark.slow
def test_a_planted_outlier_ranks_first() -> None:
    from pipeline.anomaly.fit import fit_scores
    from pipeline.anomaly.settings import AnomalySettings

    # 400 unit vectors near an 8-dimensional subspace of R^384, and one off it.
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(384, 8)))[0].T
    inliers = rng.normal(size=(400, 8)) @ basis + 0.01 * rng.normal(size=(400, 384))
    outlier = rng.normal(size=(1, 384))
    vectors = np.vstack([inliers[:200], outlier, inliers[200:]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    settings = AnomalySettings.from_cfg(dict(compose().anomaly), seed=3)
    fitted = fit_scores(vectors.astype(np.float32), settings)
    assert int(np.argmax(fitted.scores)) == 200
    assert fitted.scores[200] > 2 * np.sort(fitted.scores)[-2]
    assert len(fitted.losses) == settings.epochs and fitted.losses[-1] < fitted.losses[0]


PROMPTS = [
    *(f"My order number {n} arrived damaged, can I get a refund?" for n in range(12)),
    *(f"How do I reset the password of account {n}?" for n in range(12)),
    "SELECT * FROM users WHERE 1=1; DROP TABLE orders; --",
]


@pytest.mark.slow
def test_stage_through_the_cli_then_show_anomalies_and_search(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from pipeline.search.api import open_from_config
    from pipeline.stages.index import run as build_index

    table = records_table(len(PROMPTS), prompts=PROMPTS)
    store = tmp_path / "data" / "dedup" / "store.duckdb"
    store.parent.mkdir(parents=True)
    pq.write_table(table, store.parent / "records.parquet")
    write_records_store(store, table)
    (tmp_path / "params.yaml").write_text(to_yaml(compose()), encoding="utf-8")

    def stage() -> dict:
        cmd = [sys.executable, "-m", "pipeline", "anomaly", "--root", str(tmp_path), "--json"]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout)

    report = stage()
    scores = pd.read_parquet(tmp_path / "data" / "anomaly" / "scores.parquet")
    assert sorted(scores["id"]) == sorted(table.column("id").to_pylist())
    assert scores[SCORE].notna().all() and (scores[SCORE] > 0).all()
    assert report["records"] == len(PROMPTS) and report["epochs"] == compose().anomaly.epochs
    metric_file = tmp_path / "reports" / "anomaly.json"
    stable = metric_file.read_bytes()
    assert set(json.loads(stable)) == {
        "model", "records", "epochs", "final_loss", "score", "strangest"
    }  # fmt: skip

    # Tracked like the classifiers: a run in the model experiment, tagged and with metrics.
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(report["mlflow_run_id"])
    assert run.data.tags["stage"] == "anomaly" and run.data.tags["model"] == "autoencoder"
    assert run.data.tags["data_hash"] == report["data_hash"]
    assert run.data.metrics["records"] == len(PROMPTS)
    assert run.data.params["anomaly.epochs"] == str(compose().anomaly.epochs)
    assert "epoch.train_loss" in run.data.metrics and "time.fit_seconds" in run.data.metrics
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == [
        "model/autoencoder.pt"
    ]

    # The strangest first; `records show` agrees with the side file.
    listed = subprocess.run(
        [sys.executable, "-m", "pipeline", "records", "anomalies", "--root", str(tmp_path),
         "--limit", "5", "--json"],
        capture_output=True, text=True, cwd=REPO, check=True,
    ).stdout  # fmt: skip
    top = json.loads(listed)
    assert [r[SCORE] for r in top] == sorted(scores[SCORE], reverse=True)[:5]
    assert [r["id"] for r in top][:5] == report["strangest"]
    record = show(store, top[0]["id"])["record"]
    assert record[SCORE] == pytest.approx(top[0][SCORE])

    # Search: the filter keeps exactly the records at or above the threshold.
    build_index(compose(), tmp_path)  # the vectors are embed-cache hits of the stage's
    threshold = float(np.sort(scores[SCORE])[-4])
    searcher = open_from_config(tmp_path)
    hits = searcher.search(
        "refund", k=20, mode="vector", filters=[f"anomaly_score>={threshold}"], scope=Scope.all()
    )
    assert {h.id for h in hits} == set(scores["id"][scores[SCORE] >= threshold])

    stage()  # same inputs: the DVC metric file is byte-identical
    assert metric_file.read_bytes() == stable


@pytest.mark.slow
def test_no_kept_records_publish_an_empty_side_file(tmp_path: Path) -> None:
    from pipeline.stages.anomaly import run

    store, frame = _store(tmp_path, n=3)
    _scores(store, frame, [0.1, 0.2, 0.3])  # an older run's scores must not survive
    pq.write_table(records_table(3).slice(0, 0), store.parent / "records.parquet")
    report = run(compose(), tmp_path)
    assert report["records"] == 0 and report["score"]["max"] is None
    assert "mlflow_run_id" not in report  # nothing was fitted: no run
    assert len(pd.read_parquet(ANOMALY.under(store))) == 0


def test_a_searcher_sees_scores_published_after_it_opened(tmp_path: Path) -> None:
    from helpers.search import build_project

    from pipeline.search.api import Searcher, SearchSettings

    dedup = tmp_path / "data" / "dedup"  # side files live beside the store's directory
    table, vectors = build_project(dedup, n=50, dim=8)
    store, frame = dedup / "store.duckdb", table.to_pandas()
    searcher = Searcher(dedup / "index", store, SearchSettings(), None)
    query, strange = vectors[0], ["anomaly_score>=0.5"]
    assert searcher.search_vector(query, k=10, filters=strange, scope=Scope.all()) == []
    assert not searcher.reload_if_changed()

    _scores(store, frame, [1.0 if i < 3 else 0.0 for i in range(len(frame))])
    assert searcher.reload_if_changed()  # the store did not change; its side file did
    hits = searcher.search_vector(query, k=10, filters=strange, scope=Scope.all())
    assert sorted(h.id for h in hits) == ["rec-0", "rec-1", "rec-2"]
    searcher.close()
