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


def test_one_class_and_missing_records_fail_clearly(tmp_path: Path) -> None:
    from pipeline.stages.train import run

    with pytest.raises(NotFoundError, match=r"records.parquet: no kept records"):
        run(config(), tmp_path)
    path = write_records(tmp_path)
    table = pq.read_table(path)
    one = table.set_column(4, "label", pa.array(["x"] * len(table)))
    pq.write_table(one, path)
    with pytest.raises(UserInputError, match=r"has 1 distinct value"):
        run(config(), tmp_path)


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

    saved = json.loads((tmp_path / "reports" / "train.json").read_text())
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
        assert len(client.get_metric_history(run_info.info.run_id, key)) == 2, key
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
