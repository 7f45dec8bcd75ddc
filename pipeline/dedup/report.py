"""The stage report (reports/dedup.json) and the same figures as an MLflow run."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.tracking import TrackingSettings, flatten_metrics, flatten_params


def accounting(report: Mapping[str, Any]) -> dict[str, Any]:
    """input_records = kept + duplicates + rejected + erased, stated with its figures."""
    removed = report["exact_duplicates"] + report["near_duplicates"]
    total = report["kept"] + removed + report["rejected"]["total"] + report["erased"]
    return {
        "equation": "input_records = kept + exact_duplicates + near_duplicates + rejected + erased",
        "input_records": report["input_records"],
        "sum": total,
        "holds": total == report["input_records"],
    }


def by_reason(counts: Mapping[str, int]) -> dict[str, Any]:
    """Rejected counts: total and by reason code."""
    return {"total": sum(counts.values()), "by_reason": dict(sorted(counts.items()))}


def log_mlflow(
    report: Mapping[str, Any],
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    tracking: TrackingSettings,
    root: Path,
) -> str:
    """Log the report's figures, the stage's params and lineage tags; return the run id."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    uri, artifacts = tracking.resolved_uri(root), tracking.artifact_location(root)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(tracking.experiment, artifact_location=artifacts)
    )
    run = client.create_run(experiment_id, run_name="dedup", tags=dict(tags))
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in sorted(flatten_metrics(report).items())]
    param_list = [Param(k, v) for k, v in sorted(flatten_params(params).items())]
    client.log_batch(run_id, metrics=metrics, params=param_list, tags=[RunTag("stage", "dedup")])
    client.log_dict(run_id, dict(report), "dedup.json")
    client.set_terminated(run_id)
    return run_id
