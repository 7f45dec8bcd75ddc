"""The train stage: kept records -> leakage-free split -> Lightning fit -> models/ + MLflow.

Reads data/dedup/records.parquet; publishes models/ (best.ckpt, meta.json, split.parquet)
and reports/train.json atomically, only from the global-zero process under DDP.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.config import require
from pipeline.errors import UserInputError
from pipeline.io.atomic import atomic_dir, write_json
from pipeline.io.reports import write_report
from pipeline.tracking import git_commit, pipeline_run
from pipeline.train.data import DataSettings, labelled, read_records
from pipeline.train.settings import FitSettings
from pipeline.train.split import SplitSettings, assign_splits, split_counts
from pipeline.train.tracking import Lineage, file_md5

if TYPE_CHECKING:  # fit.py imports Lightning (~10 s): only once the input is known good
    from pipeline.train.fit import FitResult


def run(cfg: Any, root: Path) -> dict[str, Any]:
    """Split, train, publish; return the reports/train.json report ({} off rank 0)."""
    started = time.perf_counter()
    s = TrainStageSettings.from_cfg(cfg, root)
    frame, unlabelled = split_records(s)  # every input error surfaces before training
    split_seconds = time.perf_counter() - started
    lineage = _lineage(cfg, root, s.records)

    from pipeline.train.fit import train_model  # imports Lightning (~10 s)

    with tempfile.TemporaryDirectory(prefix=".train-", dir=root) as work:
        result = train_model(s.fit, frame, Path(work), lineage)
        if not result.is_global_zero:
            return {}
        _publish_model(s, result, lineage, frame)
    report = {
        "model": s.fit.model.name,
        "best_val": result.best,
        "epochs": result.epochs,
        "fit_seconds": round(result.seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
        "step_seconds": {"split": round(split_seconds, 3), **result.steps},
        "train_samples_per_s": round(result.train_samples_per_s, 1),
        "records": {"labelled": len(frame), "unlabelled": unlabelled, **split_counts(frame)},
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


def split_records(s: TrainStageSettings) -> tuple[pd.DataFrame, int]:
    """The labelled records with their split column, and how many records had no label."""
    records = read_records(s.records)
    frame, unlabelled = labelled(records, s.data, str(s.records))
    if frame.empty:
        raise UserInputError(f"{s.records}: no record has a {s.data.label_field!r} value")
    return assign_splits(frame, s.split), unlabelled


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
