"""The anomaly stage's MLflow run: in the model runs' experiment, tagged `stage=anomaly`.

The run is opened by Lightning's MLFlowLogger (per-epoch `epoch.train_loss`); the lineage
tags, the config, the report's figures and the network's weights are added here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.tracking import (
    DESCRIPTION,
    MODEL_RUNS,
    TIME,
    TrackingSettings,
    experiment_id,
    flatten_metrics,
    flatten_params,
    log_new_params,
    set_new_tags,
)
from pipeline.train.tracking import Lineage

STAGE = "anomaly"


def open_logger(tracking: TrackingSettings, root: Path, lineage: Lineage, name: str) -> Any:
    """An MLFlowLogger on the tracking store whose run carries the lineage tags."""
    from mlflow.tracking import MlflowClient
    from pytorch_lightning.loggers import MLFlowLogger

    uri = tracking.resolved_uri(root)
    # Created here, with the description, when the anomaly stage is the first to run.
    experiment_id(
        MlflowClient(uri), tracking.experiment, tracking.artifact_location(root), MODEL_RUNS
    )
    logger = MLFlowLogger(
        experiment_name=tracking.experiment,
        tracking_uri=uri,
        artifact_location=tracking.artifact_location(root),
        run_name=f"{STAGE}-{name}",
        prefix="epoch",
        tags=_tags(lineage, name),
    )
    logger.LOGGER_JOIN_CHAR = "."  # `epoch.train_loss`, like the classifiers' curves
    return logger


def _tags(lineage: Lineage, name: str) -> dict[str, str]:
    return {
        "stage": STAGE,
        "model": name,
        "git_commit": lineage.git_commit,
        "data_hash": lineage.data_hash,
        "pipeline_run": lineage.pipeline_run,
    }


def log_result(
    logger: Any, lineage: Lineage, name: str, report: Mapping[str, Any], net: Any
) -> str:
    """Add the config, the report's numbers and the weights to the logger's run; its id."""
    import torch

    client, run_id = logger.experiment, logger.run_id
    description = (
        f"Autoencoder `{name}` over the embeddings of {lineage.records_path.name} "
        f"(data {lineage.data_hash[:12]}): `anomaly_score` = reconstruction error. "
        "`epoch.train_loss` is the curve; the scores are in data/anomaly/scores.parquet."
    )
    set_new_tags(client, run_id, {**_tags(lineage, name), DESCRIPTION: description})
    sections = {k: lineage.config[k] for k in ("anomaly", "embed", "seed") if k in lineage.config}
    log_new_params(client, run_id, flatten_params(sections))
    for key, value in flatten_metrics(report).items():
        # Durations apart from the quality figures, as every stage logs them.
        client.log_metric(run_id, f"{TIME}{key}" if key.endswith("seconds") else key, value)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "autoencoder.pt"
        torch.save(net.state_dict(), weights)
        client.log_artifact(run_id, str(weights), artifact_path="model")
    logger.finalize("success")
    return str(run_id)
