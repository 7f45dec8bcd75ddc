"""Training one model on a split frame: features -> DataModule -> Lightning fit -> MLflow.

Reads typed settings (`FitSettings`), never the whole config. The Trainer, its callbacks
(`conf/callbacks/`) and its logger (`conf/logger/`) are built by Hydra from their groups.
Imports Lightning at module level: the stage imports this module inside `run`.
"""

from __future__ import annotations

import sys
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
from pipeline.tracking import DESCRIPTION, TIME, flatten_params
from pipeline.train import tracking
from pipeline.train.data import balanced_class_weights
from pipeline.train.inputs import Collate, InputKind, ModelInputs, model_inputs
from pipeline.train.module import ClassifierDataModule, ClassifierModule, RowsDataset
from pipeline.train.quiet import quiet_libraries
from pipeline.train.settings import FitSettings
from pipeline.train.tracking import Lineage

CURVES = "epoch."  # per-epoch metrics in MLflow; the run's val_* are the best epoch's
EPOCH_METRICS = ("train_loss", "train_acc", "train_macro_f1", "val_loss", "val_acc", "val_macro_f1")


@dataclass
class FitResult:
    """The outcome of one fit; only the global-zero process has a checkpoint and a run."""

    is_global_zero: bool
    labels: list[str] = field(default_factory=list)
    checkpoint: Path | None = None
    best: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)  # wall seconds per step
    train_samples_per_s: float = 0.0
    run_id: str | None = None
    experiment_id: str | None = None

    @property
    def epochs(self) -> int:
        """Epochs trained (0 off the global-zero process)."""
        return len(self.history)


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

    def samples_per_s(self, train_rows: int) -> float:
        """Training throughput over every epoch, validation excluded (0 if nothing timed)."""
        samples = len(self.history) * train_rows
        return samples / self.train_seconds if self.train_seconds else 0.0


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
        prefix=CURVES.rstrip("."),
        tags={
            "stage": "train",
            "git_commit": lineage.git_commit,
            "data_hash": lineage.data_hash,
            "pipeline_run": lineage.pipeline_run,
            "model": settings.model.name,
            DESCRIPTION: _description(settings, lineage),
        },
    )
    if not isinstance(logger, MLFlowLogger):
        # The dataset input, checkpoint and model are logged into this logger's MLflow run.
        raise UserInputError("config logger: the train stage needs an MLFlowLogger")
    # Per-epoch curves as `epoch.val_macro_f1`...: the run's own `val_*` metrics are the best
    # epoch's (logged after the fit), and MLflow shows a metric's last value as its summary.
    logger.LOGGER_JOIN_CHAR = "."
    return logger


def _description(settings: FitSettings, lineage: Lineage) -> str:
    """The run's description (MLflow shows it on the run page)."""
    return (
        f"{settings.model.name} trained on {lineage.records_path.name} "
        f"(data {lineage.data_hash[:12]}, commit {lineage.git_commit[:12]}, "
        f"pipeline run {lineage.pipeline_run}). `val_*` are the best epoch's (`best_epoch`); "
        "`epoch.*` are the curves; `test.*` and `eval/` come from the evaluate stage; "
        "`time.*` are durations."
    )


def train_model(
    settings: FitSettings, frame: pd.DataFrame, work_dir: Path, lineage: Lineage
) -> FitResult:
    """Fit the model on the train rows of `frame` (label, text, split), validating on val."""
    labels, y = _seed_and_encode(settings, frame)
    model = settings.model
    net = build("model.net", model.net, num_labels=len(labels))
    inputs = model_inputs(
        InputKind.of(net),
        settings.embed,
        settings.embed_cache,
        model.max_length,
        getattr(net, "lexical", None),  # the hashing settings of a hybrid network
    )
    # The logger's run starts here, so its start time includes computing the features.
    trainer, logger, history, checkpoint = _trainer(settings, lineage, work_dir)
    clock = time.perf_counter()
    try:
        sets = _datasets(inputs, frame, y)
        if hasattr(net, "fit_inputs"):  # statistics of the train rows the network keeps (IDF)
            net.fit_inputs(sets["train"].features)
    except BaseException:
        logger.finalize("failed")
        raise
    steps = {"features": time.perf_counter() - clock}
    data = _datamodule(sets, inputs, settings)
    module = _lightning_module(net, sets["train"], len(labels), settings)
    clock = time.perf_counter()
    trainer.fit(module, datamodule=data)
    steps["fit"] = time.perf_counter() - clock
    if not trainer.is_global_zero:
        return FitResult(is_global_zero=False)
    best, best_epoch, best_path = _load_best(net, checkpoint, history.history)
    speed = history.samples_per_s(len(sets["train"]))
    clock = time.perf_counter()
    metrics = {
        **best,
        "best_epoch": best_epoch,
        f"{TIME}train_samples_per_s": speed,
        **{f"{TIME}{step}_seconds": seconds for step, seconds in steps.items()},
    }
    example = inputs.example(sets["train"].features)
    uri = settings.tracking_uri
    tracking.log_lineage(logger.run_id, uri, lineage, len(frame), best_path, net, example, metrics)
    steps["mlflow_artifacts"] = time.perf_counter() - clock
    return FitResult(
        is_global_zero=True,
        labels=labels,
        checkpoint=best_path,
        best=best,
        history=history.history,
        seconds=steps["fit"],
        steps={k: round(v, 3) for k, v in steps.items()},
        train_samples_per_s=speed,
        run_id=logger.run_id,
        experiment_id=logger.experiment_id,
    )


def _seed_and_encode(settings: FitSettings, frame: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Quiet Lightning's noise, set threads and seeds; the sorted labels and each row's index."""
    quiet_libraries()
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists and is not empty.*")
    labels = sorted(frame["label"].unique().tolist())
    y = frame["label"].map({name: i for i, name in enumerate(labels)}).to_numpy(np.int64)
    if settings.threads:
        # On a busy 2-core machine, 2 intra-op threads per process spin against each other:
        # a small head trains ~20x slower than with 1 (measured), so threads are config.
        torch.set_num_threads(settings.threads)
    pl.seed_everything(settings.seed, workers=True, verbose=False)
    return labels, y


def _datasets(inputs: ModelInputs, frame: pd.DataFrame, y: np.ndarray) -> dict[str, RowsDataset]:
    """The features of every text (cached embeddings or token ids), split into train and val."""
    features = inputs.features(frame["input"].tolist())  # the text and its context
    masks = {name: (frame["split"] == name).to_numpy() for name in ("train", "val")}
    return {
        name: RowsDataset(_take(features, np.flatnonzero(mask)), y[mask])
        for name, mask in masks.items()
    }


def _datamodule(
    sets: Mapping[str, RowsDataset], inputs: ModelInputs, settings: FitSettings
) -> ClassifierDataModule:
    """Train and val loaders; the class-balanced sampler when `model.balance` asks for it."""
    return ClassifierDataModule(
        sets["train"],
        sets["val"],
        Collate(inputs),
        batch_size=settings.model.batch_size,
        balanced_sampler=settings.model.balance == "sampler",
        seed=settings.seed,
    )


def _lightning_module(
    net: torch.nn.Module, train: RowsDataset, n_labels: int, settings: FitSettings
) -> ClassifierModule:
    """The network with its optimizer, schedule and (with `class_weights`) a weighted loss."""
    model = settings.model
    weights = torch.from_numpy(balanced_class_weights(train.labels, n_labels))
    scheduler = build("scheduler", settings.scheduler) if settings.scheduler else None
    return ClassifierModule(
        net,
        n_labels,
        optimizer=build("optimizer", settings.optimizer),
        scheduler=scheduler,
        class_weights=weights if model.balance == "class_weights" else None,
        lr=model.lr,
    )


def _trainer(
    settings: FitSettings, lineage: Lineage, work_dir: Path
) -> tuple[pl.Trainer, MLFlowLogger, EpochHistory, ModelCheckpoint]:
    """The Trainer with its configured callbacks and MLflow logger (config logged as params)."""
    logger = build_logger(settings, lineage)
    history = EpochHistory()
    # A bar redrawn with carriage returns is noise in a log file: off a terminal the
    # `ProgressLines` callback (conf/callbacks) prints one line per epoch instead.
    wants_bar = settings.trainer.get("enable_progress_bar", True) is not False
    progress_bar = wants_bar and sys.stderr.isatty()
    callbacks, checkpoint = build_callbacks(settings.callbacks, work_dir, progress_bar)
    trainer: pl.Trainer = build(
        "trainer",
        settings.trainer,
        enable_progress_bar=progress_bar,
        callbacks=[history, *callbacks],
        logger=logger,
        default_root_dir=str(work_dir),
    )
    logger.log_hyperparams(flatten_params(lineage.config))
    return trainer, logger, history, checkpoint


def _load_best(
    net: torch.nn.Module, checkpoint: ModelCheckpoint, history: list[dict[str, float]]
) -> tuple[dict[str, float], int, Path]:
    """Load the best checkpoint's weights into `net`; its epoch's val metrics, the epoch and
    the checkpoint's path."""
    best_path = Path(checkpoint.best_model_path)
    best = _best_epoch(history, str(checkpoint.monitor), checkpoint.mode)
    state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
    net.load_state_dict(
        {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    )
    val = {k: v for k, v in best.items() if k.startswith("val_")}
    return val, int(best["epoch"]), best_path


def _best_epoch(history: list[dict[str, float]], monitor: str, mode: str) -> dict[str, float]:
    """The epoch the checkpoint kept: best `monitor` (ties: the first, as Lightning keeps)."""
    sign = 1.0 if mode == "max" else -1.0
    return max(history, key=lambda row: sign * row.get(monitor, -sign * float("inf")))


def _take(features: Any, index: np.ndarray) -> Any:
    if isinstance(features, np.ndarray) or hasattr(features, "tocsr"):  # dense or sparse rows
        return features[index]
    return [features[i] for i in index]
