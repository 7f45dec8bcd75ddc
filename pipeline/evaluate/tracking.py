"""Logging an evaluation into the train stage's MLflow run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import NotFoundError
from pipeline.tracking import flatten_metrics


def _resume(tracking_uri: str, run_id: str) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.get_run(run_id)
    except MlflowException as exc:
        raise NotFoundError(
            f"models/meta.json: mlflow_run_id {run_id} is not in {tracking_uri}; "
            "re-run train (`dvc repro`) against this tracking store"
        ) from exc


def log_evaluation(
    tracking_uri: str,
    run_id: str,
    metrics: Mapping[str, Any],
    per_class: Mapping[str, Any],
    artifacts: list[Path],
) -> None:
    """Resume run `run_id` and log metrics, per-class report and plots."""
    import mlflow

    _resume(tracking_uri, run_id)
    with mlflow.start_run(run_id=run_id):
        # The train run becomes the record of both stages; `stage` says how far it got.
        mlflow.set_tags({"stage": "evaluate", "evaluated": "true"})
        mlflow.log_metrics({f"test.{k}": v for k, v in flatten_metrics(metrics).items()})
        mlflow.log_dict(dict(per_class), "eval/per_class.json")
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_path="eval")


def log_mistakes(tracking_uri: str, run_id: str, mistakes: list[dict[str, Any]]) -> None:
    """Log the most confident mistakes as the run's table (call it holding the writer lock:
    an erasure scrubs this artifact and must not be undone)."""
    import mlflow

    from pipeline.evaluate.mistakes import ARTIFACT

    _resume(tracking_uri, run_id)
    with mlflow.start_run(run_id=run_id):
        columns = ["id", "actual", "predicted", "confidence", "actual_probability", "text"]
        table = {c: [m[c] for m in mistakes] for c in columns}
        mlflow.log_table(table, artifact_file=ARTIFACT)
