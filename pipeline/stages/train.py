"""The train stage: kept records -> leakage-free split -> Lightning fit -> models/ + MLflow.

Reads data/dedup/records.parquet; publishes models/ (best.ckpt, meta.json, split.parquet)
and reports/train.json atomically, only from the global-zero process under DDP.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.config import require
from pipeline.errors import UserInputError
from pipeline.io.atomic import atomic_dir, write_json
from pipeline.tracking import git_commit, pipeline_run
from pipeline.train.data import DataSettings, labelled, read_records
from pipeline.train.settings import FitSettings
from pipeline.train.split import SplitSettings, assign_splits, split_counts


def run(cfg: Any, root: Path) -> dict[str, Any]:
    """Split, train, publish; return the reports/train.json report ({} off rank 0)."""
    from omegaconf import OmegaConf

    from pipeline.train import tracking

    started = time.perf_counter()
    records_path = root / require(cfg, "paths.records")
    data_settings = DataSettings(
        label_field=str(require(cfg, "data.label_field")), text=str(cfg.embed.get("text", "prompt"))
    )
    split_settings = SplitSettings.from_cfg(
        require(cfg, "split"),
        seed=int(require(cfg, "seed")),
        label_field=data_settings.label_field,
        near_dup=OmegaConf.select(cfg, "dedup.near", default=None),
        source=str(records_path),
    )
    fit_settings = FitSettings.from_cfg(cfg, root)
    records = read_records(records_path)
    frame, unlabelled = labelled(records, data_settings, str(records_path))
    if frame.empty:
        raise UserInputError(f"{records_path}: no record has a {data_settings.label_field!r} value")
    frame = assign_splits(frame, split_settings)  # every input error surfaces before training
    split_seconds = time.perf_counter() - started

    config = OmegaConf.to_container(cfg, resolve=True)
    data_hash = tracking.file_md5(records_path)
    commit = git_commit(root)
    lineage_run = pipeline_run(commit, data_hash, config)

    from pipeline.train.fit import Lineage, train_model  # imports Lightning (~10 s)

    lineage = Lineage(records_path, data_hash, commit, lineage_run, config)
    with tempfile.TemporaryDirectory(prefix=".train-", dir=root) as work:
        result = train_model(fit_settings, frame, Path(work), lineage)
        if not result.is_global_zero:
            return {}
        meta = {
            "model": fit_settings.model.name,
            "labels": result.labels,
            "label_field": data_settings.label_field,
            "text": data_settings.text,
            "mlflow_run_id": result.run_id,
            "mlflow_experiment_id": result.experiment_id,
            "pipeline_run": lineage_run,
            "data_hash": data_hash,
            "git_commit": commit,
            "best_val_macro_f1": result.best.get("val_macro_f1"),
            "config": config,
        }
        splits = frame[["id", "rid", "label", "split"]].sort_values("rid", kind="stable")
        with atomic_dir(root / require(cfg, "paths.models")) as out:
            shutil.copyfile(result.checkpoint, out / "best.ckpt")
            write_json(out / "meta.json", meta)
            splits.to_parquet(out / "split.parquet", index=False)
    report = {
        "model": meta["model"],
        "best_val": result.best,
        "epochs": result.epochs,
        "fit_seconds": round(result.seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
        "step_seconds": {"split": round(split_seconds, 3), **result.steps},
        "train_samples_per_s": round(result.train_samples_per_s, 1),
        "records": {"labelled": len(frame), "unlabelled": unlabelled, **split_counts(frame)},
        "labels": len(result.labels),
        "mlflow_run_id": result.run_id,
        "pipeline_run": lineage_run,
    }
    write_json(root / require(cfg, "paths.reports") / "train.json", report)
    return report
