"""Training one model on a split frame: features -> DataModule -> Lightning fit -> MLflow.

Reads typed settings (`FitSettings`), never the whole config. The Trainer, its callbacks
(`conf/callbacks/`) and its logger (`conf/logger/`) are built by Hydra from their groups.
Imports Lightning at module level: the stage imports this module inside `run`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, ProgressBar
from pytorch_lightning.loggers import MLFlowLogger

from pipeline.errors import UserInputError
from pipeline.tracking import flatten_params
from pipeline.train import tracking
from pipeline.train.data import balanced_class_weights
from pipeline.train.inputs import Collate, InputKind, model_inputs
from pipeline.train.module import ClassifierDataModule, ClassifierModule, RowsDataset
from pipeline.train.settings import FitSettings

EPOCH_METRICS = ("train_loss", "train_acc", "train_macro_f1", "val_loss", "val_acc", "val_macro_f1")


@dataclass
class Lineage:
    """What ties a run to its inputs: records file, its DVC hash, commit and execution id."""

    records_path: Path
    data_hash: str
    git_commit: str
    pipeline_run: str
    config: Mapping[str, Any] = field(default_factory=dict)  # composed; logged as run params


@dataclass
class FitResult:
    """The outcome of one fit; only the global-zero process has a checkpoint and a run."""

    is_global_zero: bool
    labels: list[str] = field(default_factory=list)
    checkpoint: Path | None = None
    best: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    epochs: int = 0
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)  # wall seconds per step
    train_samples_per_s: float = 0.0
    run_id: str | None = None
    experiment_id: str | None = None


class EpochHistory(Callback):
    """Per-epoch metrics and the time spent in training batches (validation excluded)."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.train_seconds = 0.0
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not trainer.sanity_checking and self._start:
            self.train_seconds += time.perf_counter() - self._start
            self._start = 0.0

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start:  # no validation this epoch
            self.train_seconds += time.perf_counter() - self._start
            self._start = 0.0
        row = {"epoch": float(trainer.current_epoch)}
        for key in EPOCH_METRICS:
            if key in trainer.callback_metrics:
                row[key] = float(trainer.callback_metrics[key])
        self.history.append(row)


def build(key: str, section: Any, **kwargs: Any) -> Any:
    """Hydra-instantiate a config section; a bad key or value names the section."""
    from hydra.errors import InstantiationException

    try:
        return instantiate(section, **kwargs)
    except InstantiationException as exc:
        # Hydra's message: "Error in call to target ...:\nTypeError(...)\nfull_key: ...".
        lines = [line for line in str(exc).splitlines() if line and not line.startswith("full_key")]
        raise UserInputError(f"config {key}: {lines[-1] if lines else exc!r}") from exc


def build_callbacks(
    sections: Mapping[str, Mapping[str, Any]], work_dir: Path, progress_bar: bool
) -> tuple[list[Callback], ModelCheckpoint]:
    """The callbacks of `conf/callbacks`; `checkpoint` must be a ModelCheckpoint (into work_dir)."""
    built = {
        name: build(
            f"callbacks.{name}",
            section,
            **({"dirpath": str(work_dir)} if name == "checkpoint" else {}),
        )
        for name, section in sections.items()
    }
    checkpoint = built.get("checkpoint")
    if not isinstance(checkpoint, ModelCheckpoint):
        raise UserInputError(
            "config callbacks.checkpoint: the train stage needs a ModelCheckpoint there "
            "(models/best.ckpt is its best checkpoint)"
        )
    # Lightning refuses a progress bar callback when the Trainer turns the bar off.
    kept = [c for c in built.values() if progress_bar or not isinstance(c, ProgressBar)]
    return kept, checkpoint


def build_logger(settings: FitSettings, lineage: Lineage) -> MLFlowLogger:
    """The `conf/logger` MLflow logger, on the tracking store, tagged with the lineage."""
    logger = build(
        "logger",
        settings.logger,
        _convert_="all",
        experiment_name=settings.tracking.experiment,
        tracking_uri=settings.tracking_uri,
        artifact_location=settings.artifact_location,
        run_name=f"train-{settings.model.name}",
        tags={
            "stage": "train",
            "git_commit": lineage.git_commit,
            "data_hash": lineage.data_hash,
            "pipeline_run": lineage.pipeline_run,
            "model": settings.model.name,
        },
    )
    if not isinstance(logger, MLFlowLogger):
        # The dataset input, checkpoint and model are logged into this logger's MLflow run.
        raise UserInputError("config logger: the train stage needs an MLFlowLogger")
    return logger


def train_model(
    settings: FitSettings, frame: pd.DataFrame, work_dir: Path, lineage: Lineage
) -> FitResult:
    """Fit the model on the train rows of `frame` (label, text, split), validating on val."""
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists and is not empty.*")
    labels = sorted(frame["label"].unique().tolist())
    y = frame["label"].map({name: i for i, name in enumerate(labels)}).to_numpy(np.int64)
    if settings.threads:
        # On a busy 2-core machine, 2 intra-op threads per process spin against each other:
        # a small head trains ~20x slower than with 1 (measured), so threads are config.
        torch.set_num_threads(settings.threads)
    pl.seed_everything(settings.seed, workers=True, verbose=False)
    model = settings.model
    net = build("model.net", model.net, num_labels=len(labels))
    inputs = model_inputs(InputKind.of(net), settings.embed, settings.embed_cache, model.max_length)
    clock = time.perf_counter()
    features = inputs.features(frame["text"].tolist())
    steps = {"features": time.perf_counter() - clock}
    masks = {name: (frame["split"] == name).to_numpy() for name in ("train", "val")}
    sets = {
        name: RowsDataset(_take(features, np.flatnonzero(mask)), y[mask])
        for name, mask in masks.items()
    }
    weights = torch.from_numpy(balanced_class_weights(y[masks["train"]], len(labels)))
    data = ClassifierDataModule(
        sets["train"],
        sets["val"],
        Collate(inputs),
        batch_size=model.batch_size,
        balanced_sampler=model.balance == "sampler",
        seed=settings.seed,
    )
    scheduler = build("scheduler", settings.scheduler) if settings.scheduler else None
    module = ClassifierModule(
        net,
        len(labels),
        optimizer=build("optimizer", settings.optimizer),
        scheduler=scheduler,
        class_weights=weights if model.balance == "class_weights" else None,
        lr=model.lr,
    )
    logger = build_logger(settings, lineage)
    history = EpochHistory()
    progress_bar = settings.trainer.get("enable_progress_bar", True) is not False
    callbacks, checkpoint = build_callbacks(settings.callbacks, work_dir, progress_bar)
    trainer: pl.Trainer = build(
        "trainer",
        settings.trainer,
        callbacks=[history, *callbacks],
        logger=logger,
        default_root_dir=str(work_dir),
    )
    logger.log_hyperparams(flatten_params(lineage.config))
    started = time.perf_counter()
    trainer.fit(module, datamodule=data)
    seconds = time.perf_counter() - started
    steps["fit"] = seconds
    if not trainer.is_global_zero:
        return FitResult(is_global_zero=False)
    best_path = Path(checkpoint.best_model_path)
    best = _best_epoch(history.history, str(checkpoint.monitor), checkpoint.mode)
    best_metrics = {f"best_{k}": v for k, v in best.items() if k.startswith("val_")}
    epochs = len(history.history)
    samples = epochs * len(sets["train"])
    speed = samples / history.train_seconds if history.train_seconds else 0.0
    state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
    net.load_state_dict(
        {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    )
    clock = time.perf_counter()
    tracking.log_lineage(
        run_id=logger.run_id,
        uri=settings.tracking_uri,
        records_path=lineage.records_path,
        data_hash=lineage.data_hash,
        rows=len(frame),
        checkpoint=best_path,
        model=net,
        example=inputs.example(sets["train"].features),
        metrics={**best_metrics, "train_samples_per_s": speed},
    )
    steps["mlflow_artifacts"] = time.perf_counter() - clock
    return FitResult(
        is_global_zero=True,
        labels=labels,
        checkpoint=best_path,
        best={k.removeprefix("best_"): v for k, v in best_metrics.items()},
        history=history.history,
        epochs=epochs,
        seconds=seconds,
        steps={k: round(v, 3) for k, v in steps.items()},
        train_samples_per_s=speed,
        run_id=logger.run_id,
        experiment_id=logger.experiment_id,
    )


def _best_epoch(history: list[dict[str, float]], monitor: str, mode: str) -> dict[str, float]:
    """The epoch the checkpoint kept: best `monitor` (ties: the first, as Lightning keeps)."""
    sign = 1.0 if mode == "max" else -1.0
    return max(history, key=lambda row: sign * row.get(monitor, -sign * float("inf")))


def _take(features: np.ndarray | list[np.ndarray], index: np.ndarray) -> Any:
    if isinstance(features, np.ndarray):
        return features[index]
    return [features[i] for i in index]
