"""Logging an evaluation into the train stage's MLflow run, without changing what it has."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import NotFoundError
from pipeline.tracking import TIME, flatten_metrics, log_new_params, set_new_tags

# Figures of the report that do not change between evaluations of one model: params.
CONSTANTS = {"n_test": "eval.n_test", "n_train": "eval.n_train", "labels": "eval.labels",
             "onnx.opset": "eval.onnx_opset"}  # fmt: skip
EVAL_DIR = "eval"  # every model run's evaluation artifacts, at the same paths (compare page)


def _client(tracking_uri: str, run_id: str) -> Any:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri)
    try:
        client.get_run(run_id)
    except MlflowException as exc:
        raise NotFoundError(
            f"models/meta.json: mlflow_run_id {run_id} is not in {tracking_uri}; "
            "re-run train (`dvc repro`) against this tracking store"
        ) from exc
    return client


def split_report(report: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """(metrics, params) of an evaluation report: scores as `test.*`, timings as `time.*`,
    the constants (test size, labels, ONNX opset) as params."""
    metrics: dict[str, float] = {}
    params: dict[str, Any] = {}
    for name, value in flatten_metrics(report).items():
        if name in CONSTANTS:
            params[CONSTANTS[name]] = int(value)
        elif name.startswith("timing."):
            metrics[TIME + name.removeprefix("timing.")] = value
        else:
            metrics[f"test.{name}"] = value
    return metrics, params


def log_evaluation(
    tracking_uri: str,
    run_id: str,
    report: Mapping[str, Any],
    per_class: Mapping[str, Any],
    artifacts: list[Path],
) -> None:
    """Add the test metrics, the constants, per-class report and plots to run `run_id`.

    The run keeps its tags (`stage=train` stays), its status and its end time (the train
    stage's); evaluate's own durations are its `time.*` metrics.
    """
    from mlflow.entities import Metric

    client = _client(tracking_uri, run_id)
    metrics, params = split_report(report)
    step = len(client.get_metric_history(run_id, "test.macro_f1"))  # one step per evaluation
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in sorted(metrics.items())])
    log_new_params(client, run_id, params)
    set_new_tags(client, run_id, {"evaluated": "true"})
    client.log_dict(run_id, dict(per_class), f"{EVAL_DIR}/per_class.json")
    for path in artifacts:
        # The plots go at the run's root: MLflow's compare page shows only the root files
        # two runs share (not those in folders), so two runs' plots appear side by side.
        folder = None if Path(path).suffix == ".png" else EVAL_DIR
        client.log_artifact(run_id, str(path), artifact_path=folder)


def log_mistakes(tracking_uri: str, run_id: str, mistakes: list[dict[str, Any]]) -> None:
    """Log the most confident mistakes as the run's table (call it holding the writer lock:
    an erasure scrubs this artifact and must not be undone)."""
    from pipeline.evaluate.mistakes import ARTIFACT

    client = _client(tracking_uri, run_id)
    columns = ["id", "actual", "predicted", "confidence", "actual_probability", "text"]
    table = {c: [m[c] for m in mistakes] for c in columns}
    client.log_table(run_id, table, artifact_file=ARTIFACT)
