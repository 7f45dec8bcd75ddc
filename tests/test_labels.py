"""Label issues and their corrections: real cleanlab, the corrections file under concurrent
writers, and the real dedup stage applying a correction to the store and records.parquet."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from test_dedup_stage import make_cfg, write_jsonl

from pipeline.dedup.corrections import Correction, append, now, read
from pipeline.errors import UserInputError
from pipeline.labels.issues import (
    LabelSettings,
    cleanlab_issues,
    cross_val_probs,
    issue_rows,
    label_issues,
    self_confidence,
)
from pipeline.stages.dedup import run
from pipeline.store.records import show


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _clusters(n_per: int, flips: int, seed: int = 0) -> tuple[np.ndarray, list[str], set[int]]:
    """Unit vectors around 4 class centroids, with `flips` labels changed to another class."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4, 32)) * 3
    labels = np.repeat(np.arange(4), n_per)
    x = centres[labels] + rng.standard_normal((len(labels), 32))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    flipped = set(rng.choice(len(labels), flips, replace=False).tolist())
    names = ["math", "qa", "support", "writing"]
    given = [names[(c + 1) % 4] if i in flipped else names[c] for i, c in enumerate(labels)]
    return x.astype(np.float32), given, flipped


def test_cleanlab_finds_flipped_labels_in_cross_validated_probs() -> None:
    x, given, flipped = _clusters(n_per=60, flips=8)
    probs = cross_val_probs(x, None, given, LabelSettings(folds=5, features="embed"))
    assert probs.pred_probs.shape == (240, 4)
    assert np.allclose(probs.pred_probs.sum(axis=1), 1.0)
    found = cleanlab_issues(probs, LabelSettings())
    hits = flipped & set(found.tolist())
    assert len(hits) >= 7, (sorted(flipped), found.tolist())  # recall
    assert len(hits) >= 0.7 * len(found)  # precision
    quality = self_confidence(probs)
    assert list(quality[found]) == sorted(quality[found])  # most suspicious first
    chosen = label_issues(probs, LabelSettings())  # cleanlab's count, the least confident
    assert len(chosen) == len(found) and len(flipped & set(chosen.tolist())) >= 7
    assert quality[chosen].max() <= np.sort(quality)[len(chosen) - 1]


def test_issue_rows_name_the_suggestion_and_leave_reviewed_out() -> None:
    x, given, _ = _clusters(n_per=40, flips=4, seed=1)
    probs = cross_val_probs(x, None, given, LabelSettings(folds=4, features="embed"))
    found = label_issues(probs, LabelSettings())
    ids = [f"r{i}" for i in range(len(given))]
    rows = issue_rows(ids, probs, found)
    first = rows[0]
    assert set(first) >= {"id", "label", "suggested_label", "score"}
    assert first["label"] == given[int(first["id"][1:])]
    assert first["suggested_label"] != first["label"]
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert first["id"] not in {r["id"] for r in issue_rows(ids, probs, found, {first["id"]})}


def test_a_class_rarer_than_the_folds_still_gets_probabilities() -> None:
    x, given, _ = _clusters(n_per=20, flips=0)
    given[0] = "rare"  # one record of its own class: folds cannot all hold it
    probs = cross_val_probs(x, None, given, LabelSettings(folds=5, features="embed"))
    assert "rare" in probs.classes and np.isfinite(probs.pred_probs).all()


def test_settings_refuse_unknown_features() -> None:
    with pytest.raises(UserInputError, match=r"labels\.features"):
        LabelSettings.from_cfg({"features": "bag-of-words"})


def _append_many(path: str, worker: int, count: int, barrier: multiprocessing.Barrier) -> None:
    barrier.wait()  # every writer starts at once
    for i in range(count):
        append(path, Correction(f"w{worker}-{i}", "correct", "qa" * 40, f"w{worker}", now()))


def test_concurrent_appends_keep_every_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "corrections.jsonl"
    workers, count = 4, 40
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_append_many, args=(str(path), w, count, barrier))
             for w in range(workers)]  # fmt: skip
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * workers
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == workers * count
    assert len(read(path)) == workers * count  # every line parses


def test_the_last_decision_wins_and_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "corrections.jsonl"
    append(path, Correction("a", "dismiss", None, "ann", now()))
    append(path, Correction("a", "correct", "math", "bob", now()))
    assert read(path)["a"].label == "math" and read(path)["a"].by == "bob"
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"id": "b", "action": "delete", "label": null, "by": "x", "at": "2024-01-01"}\n')
    with pytest.raises(UserInputError, match=r"corrections.jsonl:3: action 'delete'"):
        read(path)
    path.write_text('{"id": "c", "action": "correct", "by": "x", "at": "2024-01-01"}\n')
    with pytest.raises(UserInputError, match=r":1: correct: needs a non-empty label"):
        read(path)


ROWS = [
    {"id": "p1", "prompt": "What is 12 times 7?", "response": "84", "label": "math"},
    {"id": "p2", "prompt": "Translate 'thank you' into German.", "response": "danke",
     "label": "math", "user_id": "u2"},  # planted wrong: a translation
    {"id": "p3", "prompt": "Summarise the meeting notes below.", "response": "ok",
     "label": "summarization"},
    {"id": "p4", "prompt": "Is this review positive?", "response": "yes", "label": "sentiment"},
]  # fmt: skip


def test_dedup_applies_corrections_with_who_and_when(tmp_path: Path, mlflow_uri: str) -> None:
    data = write_jsonl(tmp_path / "raw" / "rows.jsonl", ROWS)
    before = data.read_bytes()
    path = tmp_path / "data" / "corrections.jsonl"
    append(path, Correction("p2", "correct", "translation", "ann", "2026-01-02T03:04:05+00:00"))
    append(path, Correction("p3", "dismiss", None, "bob", "2026-01-03T00:00:00+00:00"))
    append(path, Correction("p4", "accept", "math", "key:app", "2026-01-04T00:00:00+00:00"))
    append(path, Correction("p4", "correct", "sentiment", "cy", "2026-01-05T00:00:00+00:00"))
    append(path, Correction("gone", "correct", "math", "ann", "2026-01-06T00:00:00+00:00"))
    report = run(make_cfg(tmp_path, data, mlflow_uri), tmp_path)
    assert report["label_corrections"] == {
        "decisions": 4, "accept": 0, "correct": 2, "dismiss": 1, "labels_changed": 1,
        "not_found": 1,
    }  # fmt: skip
    assert report["accounting"]["holds"]
    con = duckdb.connect(str(tmp_path / "data/dedup/store.duckdb"), read_only=True)
    labels = dict(con.execute("SELECT id, label FROM records").fetchall())
    assert labels == {"p1": "math", "p2": "translation", "p3": "summarization", "p4": "sentiment"}
    rows = con.execute(
        "SELECT record_id, original_label, label, action, corrected_by, "
        "strftime(corrected_at, '%Y-%m-%dT%H:%M:%S') FROM label_corrections ORDER BY record_id"
    ).fetchall()
    con.close()
    assert rows == [
        ("p2", "math", "translation", "correct", "ann", "2026-01-02T03:04:05"),
        ("p3", "summarization", "summarization", "dismiss", "bob", "2026-01-03T00:00:00"),
        ("p4", "sentiment", "sentiment", "correct", "cy", "2026-01-05T00:00:00"),
    ]
    parquet = {r["id"]: r["label"] for r in pq.read_table(tmp_path / "data/dedup/records.parquet")
               .to_pylist()}  # fmt: skip
    assert parquet["p2"] == "translation"
    assert data.read_bytes() == before  # the raw data is never edited
    shown = show(tmp_path / "data/dedup/store.duckdb", "p2")["label_corrections"]
    assert [(c["original_label"], c["corrected_by"]) for c in shown] == [("math", "ann")]
    metrics = _mlflow_metrics(mlflow_uri)
    assert metrics["label_corrections.labels_changed"] == 1.0


def _mlflow_metrics(uri: str) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], order_by=["start_time DESC"]
    )
    dedup = next(r for r in runs if r.data.tags.get("stage") == "dedup")
    return dedup.data.metrics


def test_a_bad_corrections_file_fails_the_stage_naming_it(tmp_path: Path, mlflow_uri: str) -> None:
    data = write_jsonl(tmp_path / "raw" / "rows.jsonl", ROWS)
    bad = tmp_path / "data" / "corrections.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"id": "p1", "action": "correct"}) + "\n{oops\n")
    with pytest.raises(UserInputError, match=r"corrections.jsonl:1: correct: needs"):
        run(make_cfg(tmp_path, data, mlflow_uri), tmp_path)
    assert not (tmp_path / "data" / "dedup").exists()  # nothing half-written


def test_issues_refuse_a_label_field_corrections_cannot_change(tmp_path: Path) -> None:
    from pipeline.config import compose
    from pipeline.labels.issues import find_issues

    cfg = compose(["data.label_field=metadata.task"])
    with pytest.raises(UserInputError, match=r"data\.label_field='metadata\.task'"):
        find_issues(cfg, tmp_path)
