"""The train stage: kept records -> leakage-free split -> Lightning fit -> models/ + MLflow.

Reads data/dedup/records.parquet; publishes models/ (best.ckpt, meta.json, split.parquet)
and reports/train.json atomically, only from the global-zero process under DDP.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.config import require
from pipeline.io.atomic import atomic_dir, write_json
from pipeline.io.reports import write_report
from pipeline.tracking import git_commit, pipeline_run
from pipeline.train.context import check_mode
from pipeline.train.data import DataSettings, labelled, read_records
from pipeline.train.settings import FitSettings
from pipeline.train.split import SPLITS, SplitSettings, TooFewLabels, assign_splits, split_counts
from pipeline.train.tracking import Lineage, file_md5

NO_LABELS = "no labelled records"  # the skip reason when no record has a label

if TYPE_CHECKING:  # fit.py imports Lightning (~10 s): only once the input is known good
    from pipeline.train.fit import FitResult


def run(cfg: Any, root: Path) -> dict[str, Any]:
    """Split, train, publish; return the reports/train.json report ({} off rank 0).

    Too few labels to train (none, one class, a split left empty) is not a failure: logs
    usually carry no label. The stage then publishes a skipped report, a models/ holding only
    meta.json and a skipped MLflow run, and returns; dedup's records still get indexed.
    """
    started = time.perf_counter()
    s = TrainStageSettings.from_cfg(cfg, root)
    try:
        frame, unlabelled = split_records(s)  # every input error surfaces before training
    except SkippedTraining as skip:
        return _skip(s, _lineage(cfg, root, s.records), skip, started)
    split_seconds = time.perf_counter() - started
    lineage = _lineage(cfg, root, s.records)

    from pipeline.train.fit import train_model  # imports Lightning (~10 s)

    with tempfile.TemporaryDirectory(prefix=".train-", dir=root) as work:
        result = train_model(s.fit, frame, Path(work), lineage)
        if not result.is_global_zero:
            return {}
        _publish_model(s, result, lineage, frame)
    counts = {"labelled": len(frame), "unlabelled": unlabelled, **split_counts(frame)}
    _log_counts(s, str(result.run_id), counts)
    report = {
        "status": "trained",
        "model": s.fit.model.name,
        "best_val": result.best,
        "epochs": result.epochs,
        "fit_seconds": round(result.seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
        "step_seconds": {"split": round(split_seconds, 3), **result.steps},
        "train_samples_per_s": round(result.train_samples_per_s, 1),
        "records": counts,
        "labels": len(result.labels),
        "mlflow_run_id": result.run_id,
        "pipeline_run": lineage.pipeline_run,
    }
    write_report(s.reports, "train.json", report)
    return report


@dataclass(frozen=True)
class TrainStageSettings:
    """Where the stage reads and writes, and the typed settings of the split and the fit."""

    records: Path
    models: Path
    reports: Path
    data: DataSettings
    split: SplitSettings
    fit: FitSettings

    @classmethod
    def from_cfg(cls, cfg: Any, root: Path) -> TrainStageSettings:
        """Read `paths`, `data`, `embed.text`, `split`, `seed`, `dedup.near` and the fit's."""
        from omegaconf import OmegaConf

        records = root / require(cfg, "paths.records")
        data = DataSettings(
            label_field=str(require(cfg, "data.label_field")),
            text=str(cfg.embed.get("text", "prompt")),
            context=check_mode(str(cfg.model.get("context", "none")), "model.context"),
        )
        split = SplitSettings.from_cfg(
            require(cfg, "split"),
            seed=int(require(cfg, "seed")),
            label_field=data.label_field,
            near_dup=OmegaConf.select(cfg, "dedup.near", default=None),
            source=str(records),
        )
        return cls(
            records=records,
            models=root / require(cfg, "paths.models"),
            reports=root / require(cfg, "paths.reports"),
            data=data,
            split=split,
            fit=FitSettings.from_cfg(cfg, root),
        )


class SkippedTraining(Exception):
    """Not enough labels to train: why (short), the detail and the record counts."""

    def __init__(self, reason: str, detail: str, labelled: int, unlabelled: int) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail
        self.labelled, self.unlabelled = labelled, unlabelled


def split_records(s: TrainStageSettings) -> tuple[pd.DataFrame, int]:
    """The labelled records with their split column, and how many records had no label.

    Unlabelled records are left out before the split, so the split of the labelled ones does
    not depend on them. Raises SkippedTraining when the labels cannot make a split.
    """
    records = read_records(s.records)
    frame, unlabelled = labelled(records, s.data, str(s.records))
    field = s.data.label_field
    if frame.empty:
        detail = f"{s.records}: none of the {unlabelled} records has a {field!r} value"
        raise SkippedTraining(NO_LABELS, detail, 0, unlabelled)
    if unlabelled:
        print(f"train: {unlabelled} of {len(records)} records have no {field!r} value; "
              f"training on the {len(frame)} labelled", file=sys.stderr, flush=True)  # fmt: skip
    try:
        return assign_splits(frame, s.split), unlabelled
    except TooFewLabels as exc:
        raise SkippedTraining(exc.reason, str(exc), len(frame), unlabelled) from exc


def _skip(
    s: TrainStageSettings, lineage: Lineage, skip: SkippedTraining, started: float
) -> dict[str, Any]:
    """Publish what a skipped training leaves: models/meta.json, a run and reports/train.json."""
    from pipeline.tracking import flatten_params

    print(f"train: skipped ({skip.reason}): {skip.detail}", file=sys.stderr, flush=True)
    counts = {"labelled": skip.labelled, "unlabelled": skip.unlabelled}
    counts |= {name: 0 for name in SPLITS}
    tags = {"stage": "train", "model": s.fit.model.name, "skipped": "true",
            "skip_reason": skip.reason, "git_commit": lineage.git_commit,
            "data_hash": lineage.data_hash, "pipeline_run": lineage.pipeline_run}  # fmt: skip
    run_id, experiment_id = _log_skipped_run(s, tags, flatten_params(lineage.config), counts)
    summary = {
        "status": "skipped",
        "reason": skip.reason,
        "detail": skip.detail,
        "model": s.fit.model.name,
        "records": counts,
        "mlflow_run_id": run_id,
        "pipeline_run": lineage.pipeline_run,
    }
    meta = {**summary, "mlflow_experiment_id": experiment_id, "data_hash": lineage.data_hash,
            "git_commit": lineage.git_commit, "label_field": s.data.label_field}  # fmt: skip
    # models/ is replaced, not kept: a checkpoint from older data must not be evaluated as
    # if it had been trained on these records. DVC's `models` out still exists.
    with atomic_dir(s.models) as out:
        write_json(out / "meta.json", meta)
    report = {**summary, "seconds": round(time.perf_counter() - started, 3)}
    write_report(s.reports, "train.json", report)
    return report


def _log_skipped_run(
    s: TrainStageSettings, tags: dict[str, str], params: dict[str, str], counts: dict[str, int]
) -> tuple[str, str]:
    """A finished MLflow run that says training was skipped and why; (run id, experiment id)."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    from pipeline.tracking import MODEL_RUNS
    from pipeline.tracking import experiment_id as experiment_id_of

    client = MlflowClient(tracking_uri=s.fit.tracking_uri)
    experiment_id = experiment_id_of(
        client, s.fit.tracking.experiment, s.fit.artifact_location, MODEL_RUNS
    )
    run = client.create_run(experiment_id, run_name=f"train-{s.fit.model.name}", tags=tags)
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in sorted(params.items())])
    _log_counts(s, run.info.run_id, counts)
    client.set_terminated(run.info.run_id)
    return run.info.run_id, experiment_id


def _log_counts(s: TrainStageSettings, run_id: str, counts: dict[str, int]) -> None:
    """The record counts (labelled, unlabelled, per split) as metrics of the training run."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    metrics = [Metric(f"records.{k}", float(v), now, 0) for k, v in sorted(counts.items())]
    MlflowClient(tracking_uri=s.fit.tracking_uri).log_batch(run_id, metrics=metrics)


def _lineage(cfg: Any, root: Path, records: Path) -> Lineage:
    """What ties the run to its inputs: the data's DVC hash, the commit, the execution id."""
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(cfg, resolve=True)
    data_hash = file_md5(records)
    commit = git_commit(root)
    return Lineage(records, data_hash, commit, pipeline_run(commit, data_hash, config), config)


def _publish_model(
    s: TrainStageSettings, result: FitResult, lineage: Lineage, frame: pd.DataFrame
) -> None:
    """Publish models/ at once: the best checkpoint, meta.json and the split (rid order)."""
    meta = {
        "model": s.fit.model.name,
        "labels": result.labels,
        "label_field": s.data.label_field,
        "text": s.data.text,
        "context": s.data.context,
        "mlflow_run_id": result.run_id,
        "mlflow_experiment_id": result.experiment_id,
        "pipeline_run": lineage.pipeline_run,
        "data_hash": lineage.data_hash,
        "git_commit": lineage.git_commit,
        "best_val_macro_f1": result.best.get("val_macro_f1"),
        "config": lineage.config,
    }
    splits = frame[["id", "rid", "label", "split"]].sort_values("rid", kind="stable")
    with atomic_dir(s.models) as out:
        shutil.copyfile(result.checkpoint, out / "best.ckpt")
        write_json(out / "meta.json", meta)
        splits.to_parquet(out / "split.parquet", index=False)
