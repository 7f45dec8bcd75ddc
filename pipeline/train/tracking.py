"""MLflow lineage for training runs: the dataset input, the checkpoint and the model.

Per-epoch curves go through Lightning's MLFlowLogger; what Lightning does not log (dataset
lineage, checkpoint, the model with its signature) is added here on the same run.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.tracking import DESCRIPTION, MODEL_RUNS

CHUNK = 1 << 20


@dataclass
class Lineage:
    """What ties a run to its inputs: records file, its DVC hash, commit and execution id."""

    records_path: Path
    data_hash: str
    git_commit: str
    pipeline_run: str
    config: Mapping[str, Any] = field(default_factory=dict)  # composed; logged as run params


def file_md5(path: str | Path) -> str:
    """md5 of a file's bytes: the hash DVC records for a file dependency."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def log_lineage(
    run_id: str,
    uri: str,
    lineage: Lineage,
    rows: int,
    checkpoint: Path,
    model: Any,
    example: Any,
    metrics: Mapping[str, float],
) -> None:
    """Add the dataset input, best checkpoint, model (signature + example) and final metrics."""
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment(client.get_run(run_id).info.experiment_id)
    if DESCRIPTION not in experiment.tags:  # Lightning's logger created it without one
        client.set_experiment_tag(experiment.experiment_id, DESCRIPTION, MODEL_RUNS)
    # start_run(run_id) refuses a run outside the process's active experiment: one set
    # earlier in this process (a notebook, a sweep, another stage) must not break the stage.
    mlflow.set_experiment(experiment_id=experiment.experiment_id)
    with mlflow.start_run(run_id=run_id):
        # The digest is DVC's md5, so a run and `dvc.lock` name the same data version.
        with warnings.catch_warnings():
            # Two registered local-file source types match a path; both mean the same.
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(str(lineage.records_path.resolve()))
        name = lineage.records_path.name
        dataset = MetaDataset(source=source, name=name, digest=lineage.data_hash)
        mlflow.log_input(dataset, context="training", tags={"rows": str(rows)})
        mlflow.log_metrics(dict(metrics))
        mlflow.log_artifact(str(checkpoint), artifact_path="checkpoints")
        example = np.asarray(example)
        mlflow.pytorch.log_model(
            model,
            name="model",
            signature=model_signature(model, example),
            input_example=example,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )


def model_signature(model: Any, example: np.ndarray) -> Any:
    """The MLflow signature: the example's dtype in, float32 logits out (one per label)."""
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    model.eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(example)).numpy()
    # Token ids vary in length: the signature leaves the sequence axis free.
    shape = (-1, -1) if example.dtype.kind == "i" else (-1, *example.shape[1:])
    return ModelSignature(
        inputs=Schema([TensorSpec(example.dtype, shape)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, logits.shape[1]))]),
    )
