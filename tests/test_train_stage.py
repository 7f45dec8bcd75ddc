"""The train stage end to end: tiny records -> models/, reports/ and a real MLflow run."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import REPO_ROOT, compose, to_yaml
from pipeline.errors import NotFoundError, UserInputError
from pipeline.io.reports import read_report
from pipeline.record import RECORD_SCHEMA

TOPICS = {
    "math": ["add", "sum", "multiply", "numbers", "divide", "equation"],
    "code": ["python", "function", "bug", "compile", "loop", "variable"],
    "travel": ["flight", "hotel", "trip", "beach", "passport", "museum"],
}


def write_records(root: Path, n: int = 90, seed: int = 0) -> Path:
    """A learnable labelled records.parquet (RECORD_SCHEMA) with sessions and sources."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = list(TOPICS)[i % 3]
        words = [rng.choice(TOPICS[label]) for _ in range(6)] + [rng.choice(["the", "a", "now"])]
        rows.append(
            {
                "rid": 10_000 + 7 * i,
                "id": f"r{i}",
                "prompt": " ".join(words),
                "response": "ok",
                "label": label,
                "user_id": f"u{i % 9}",
                "session_id": f"s{i // 2}",
                "tags": [],
                "origin": "real",
                "metadata": json.dumps({"source_dataset": f"ds{i % 5}"}),
                "file": "t.jsonl",
                "line": i + 1,
            }
        )
    path = root / "data" / "dedup" / "records.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=RECORD_SCHEMA), path)
    return path


def config(*overrides: str):
    return compose(["trainer.enable_progress_bar=false", *overrides])


def test_bad_label_field_fails_before_training(tmp_path: Path) -> None:
    from pipeline.stages.train import run

    write_records(tmp_path)
    with pytest.raises(UserInputError, match=r"column 'task' does not exist"):
        run(config("data.label_field=task"), tmp_path)
    with pytest.raises(UserInputError, match=r"split.val_fraction"):
        run(config("split.val_fraction=1.5"), tmp_path)
    assert not (tmp_path / "models").exists()
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow  # creating the MLflow sqlite store takes most of its ~40 s on a busy machine
def test_missing_records_fail_and_one_class_skips_training(tmp_path: Path) -> None:
    """No records is an error (run dedup first); labels of one class are a fact about the data:
    the stage says so, trains nothing, replaces models/ and records a skipped MLflow run."""
    import mlflow

    from pipeline.stages.train import run

    with pytest.raises(NotFoundError, match=r"records.parquet: no kept records"):
        run(config(), tmp_path)
    path = write_records(tmp_path)
    table = pq.read_table(path)
    labels = ["x"] * (len(table) - 5) + [None] * 5
    pq.write_table(table.set_column(4, "label", pa.array(labels)), path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "best.ckpt").write_bytes(b"an older model")
    report = run(config(), tmp_path)
    assert report["status"] == "skipped" and report["reason"] == "too few classes"
    assert "has 1 distinct value(s) in 85 labelled records" in report["detail"]
    assert report["records"] == {"labelled": 85, "unlabelled": 5, "train": 0, "val": 0, "test": 0}
    assert read_report(tmp_path / "reports", "train.json") == report
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["meta.json"]
    meta = json.loads((tmp_path / "models" / "meta.json").read_text())
    assert meta["status"] == "skipped" and meta["mlflow_run_id"] == report["mlflow_run_id"]
    run_info = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(
        report["mlflow_run_id"]
    )
    assert run_info.info.status == "FINISHED"
    assert run_info.data.tags["skipped"] == "true"
    assert run_info.data.tags["skip_reason"] == "too few classes"
    assert run_info.data.metrics["records.unlabelled"] == 5.0
    assert run_info.data.params["model.name"] == config().model.name


@pytest.mark.slow
def test_train_stage_end_to_end_with_mlflow(tmp_path: Path) -> None:
    import mlflow

    from pipeline.stages.train import run
    from pipeline.train.inference import load_classifier

    records = write_records(tmp_path)
    report = run(config("model=textcnn", "trainer.max_epochs=2", "seed=7"), tmp_path)

    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir()) == ["best.ckpt", "meta.json", "split.parquet"]
    meta = json.loads((models / "meta.json").read_text())
    data_hash = hashlib.md5(records.read_bytes()).hexdigest()
    assert meta["model"] == "textcnn" and meta["labels"] == ["code", "math", "travel"]
    assert meta["data_hash"] == data_hash and meta["label_field"] == "label"
    assert meta["config"]["model"]["name"] == "textcnn" and meta["text"] == "prompt"
    assert meta["best_val_macro_f1"] == pytest.approx(report["best_val"]["val_macro_f1"])

    split = pd.read_parquet(models / "split.parquet")
    assert list(split.columns) == ["id", "rid", "label", "split"]
    assert split["rid"].is_monotonic_increasing and len(split) == 90
    assert set(split["split"]) == {"train", "val", "test"}
    sessions = split["id"].str[1:].astype(int) // 2
    assert split.groupby(sessions)["split"].nunique().max() == 1

    saved = read_report(tmp_path / "reports", "train.json")  # with its timings beside it
    assert saved is not None
    # Training time excludes validation, so the rate beats epochs x rows / the whole fit time.
    trained = saved["epochs"] * saved["records"]["train"]
    assert saved["epochs"] == 2 and saved["train_samples_per_s"] >= trained / saved["fit_seconds"]
    assert saved["records"]["train"] + saved["records"]["val"] + saved["records"]["test"] == 90

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_info = client.get_run(meta["mlflow_run_id"])
    tags = run_info.data.tags
    assert tags["stage"] == "train" and tags["data_hash"] == data_hash
    assert tags["pipeline_run"] == meta["pipeline_run"] and tags["git_commit"]
    params = run_info.data.params
    assert params["model.name"] == "textcnn" and params["seed"] == "7"
    assert params["model.net.kernel_sizes"] == "[3, 4, 5]"
    for key in ("train_loss", "val_loss", "train_acc", "val_acc", "train_macro_f1"):
        assert len(client.get_metric_history(run_info.info.run_id, f"epoch.{key}")) == 2, key
    # The summary is the best epoch's, durations are time.*; the run spans the stage.
    assert run_info.data.metrics["val_macro_f1"] == report["best_val"]["val_macro_f1"]
    assert run_info.data.metrics["best_epoch"] in (0, 1)
    assert run_info.data.metrics["time.fit_seconds"] == pytest.approx(saved["fit_seconds"], 1e-3)
    assert (run_info.info.end_time - run_info.info.start_time) / 1000 >= saved["fit_seconds"]
    assert "mlflow.note.content" in tags
    (dataset,) = run_info.inputs.dataset_inputs
    assert dataset.dataset.digest == data_hash and dataset.dataset.name == "records.parquet"
    artifacts = [a.path for a in client.list_artifacts(run_info.info.run_id, "checkpoints")]
    assert artifacts == ["checkpoints/best.ckpt"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (logged,) = mlflow.search_logged_models(
        experiment_ids=[meta["mlflow_experiment_id"]], output_format="list"
    )
    assert logged.source_run_id == run_info.info.run_id
    pyfunc = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")

    classifier = load_classifier(models)
    texts = ["fix the python loop bug", "book a flight and hotel", "add and divide numbers"]
    proba = classifier.predict_proba(texts)
    assert proba.shape == (3, 3) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    ids, mask = classifier.export_inputs(texts)
    logits = classifier.module(ids, mask).detach().numpy()
    assert np.allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), proba, atol=1e-5)
    # Rows with no padding: the logged MLflow model (ids only) agrees with the checkpoint.
    same_length = ids[:, : int(mask.sum(1).min())]
    served = np.asarray(pyfunc.predict(same_length.numpy()))
    assert np.allclose(served, classifier.module(same_length).detach().numpy(), atol=1e-5)


@pytest.mark.slow
def test_linear_probe_with_the_real_encoder(tmp_path: Path) -> None:
    from pipeline.stages.train import run
    from pipeline.train.inference import load_classifier

    write_records(tmp_path)
    report = run(config("model=linear_probe", "trainer.max_epochs=3"), tmp_path)
    assert report["model"] == "linear_probe" and report["epochs"] == 3
    assert report["best_val"]["val_macro_f1"] > 0.5  # three well-separated topics
    classifier = load_classifier(tmp_path / "models")
    (vectors,) = classifier.export_inputs(["python function bug"])
    assert tuple(vectors.shape) == (1, 384)
    assert classifier.labels[int(classifier.predict_proba(["python function bug"]).argmax())] == (
        "code"
    )


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_to_end(tmp_path: Path) -> None:
    write_records(tmp_path, n=120)
    (tmp_path / "params.yaml").write_text(to_yaml(config()), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PIPELINE_RUN": "ddp-test"}
    # Two config groups chosen on the command line, recomposed from conf/ (and re-read by
    # the rank-1 process Lightning launches with the same arguments).
    overrides = ["-S", "trainer=ddp", "-S", "model=textcnn", "-S", "trainer.max_epochs=2"]
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "train", "--json", *overrides],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "world_size: 2" in done.stderr or "distributed_backend=gloo" in done.stderr
    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert report["epochs"] == 2 and report["pipeline_run"] == "ddp-test"
    meta = json.loads((tmp_path / "models" / "meta.json").read_text())
    assert meta["mlflow_run_id"] == report["mlflow_run_id"] and meta["model"] == "textcnn"
    assert meta["config"]["trainer"]["devices"] == 2
    assert (tmp_path / "models" / "best.ckpt").stat().st_size > 0
