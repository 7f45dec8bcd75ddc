"""Training one model on a split frame: features -> DataModule -> Lightning fit -> MLflow.

Imports Lightning at module level: the stage imports this module inside `run`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import MLFlowLogger

from pipeline.errors import UserInputError
from pipeline.tracking import TrackingSettings
from pipeline.train import tracking
from pipeline.train.data import balanced_class_weights
from pipeline.train.module import (
    ClassifierDataModule,
    ClassifierModule,
    RowsDataset,
)

MONITOR = "val_macro_f1"
EPOCH_METRICS = ("train_loss", "train_acc", "train_macro_f1", "val_loss", "val_acc", "val_macro_f1")
TRAINER_EXTRAS = ("patience", "threads")  # keys of conf/trainer that are not Trainer arguments


@dataclass
class Lineage:
    """What ties a run to its inputs: records file, its DVC hash, commit and execution id."""

    records_path: Path
    data_hash: str
    git_commit: str
    pipeline_run: str


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


def features_for(
    input_kind: str, texts: list[str], cfg: DictConfig, root: Path
) -> np.ndarray | list[np.ndarray]:
    """Cached sentence embeddings or token ids for every text, as the network reads them."""
    if input_kind == "embedding":
        from pipeline.embed import EmbedSettings, embed_texts

        settings = EmbedSettings.from_cfg(cfg.embed)
        return embed_texts(texts, settings, cache_dir=root / cfg.paths.embed_cache, progress=False)
    from pipeline.train.tokenize import encode

    return encode(texts, max_length=int(cfg.model.get("max_length", 128)))


# MLflow stores the input example beside the model (input_example.json): it must not be
# derived from any record, or an erased user's text (or its token ids or embedding) would
# outlive the erasure in every run's artifacts (docs/erasure.md).
EXAMPLE_TEXTS = ("an example prompt", "another example prompt, a little longer")


def example_input(net: torch.nn.Module, features: Any, rows: int = 2) -> np.ndarray:
    """A fixed model input for MLflow's signature: unit embeddings of the features' width,
    or the token ids of EXAMPLE_TEXTS; only the shape of `features` is read."""
    if net.input_kind == "embedding":
        dim = int(np.asarray(features[:1]).shape[1])
        return np.full((rows, dim), 1.0 / np.sqrt(dim), dtype=np.float32)
    from pipeline.train.tokenize import encode, pad_batch

    ids, _ = pad_batch(encode(EXAMPLE_TEXTS[:rows]))
    return ids.numpy()


def train_model(
    cfg: DictConfig, frame: pd.DataFrame, root: Path, work_dir: Path, lineage: Lineage
) -> FitResult:
    """Fit `cfg.model` on the train rows of `frame` (label, text, split), validating on val."""
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists and is not empty.*")
    labels = sorted(frame["label"].unique().tolist())
    y = frame["label"].map({name: i for i, name in enumerate(labels)}).to_numpy(np.int64)
    if cfg.trainer.get("threads"):
        # On a busy 2-core machine, 2 intra-op threads per process spin against each other:
        # a small head trains ~20x slower than with 1 (measured), so threads are config.
        torch.set_num_threads(int(cfg.trainer.threads))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    net = build("model.net", cfg.model.net, num_labels=len(labels))
    clock = time.perf_counter()
    features = features_for(net.input_kind, frame["text"].tolist(), cfg, root)
    steps = {"features": time.perf_counter() - clock}
    masks = {name: (frame["split"] == name).to_numpy() for name in ("train", "val")}
    sets = {
        name: RowsDataset(_take(features, np.flatnonzero(mask)), y[mask])
        for name, mask in masks.items()
    }
    balance = str(cfg.model.get("balance", "class_weights"))
    weights = torch.from_numpy(balanced_class_weights(y[masks["train"]], len(labels)))
    data = ClassifierDataModule(
        sets["train"],
        sets["val"],
        net.input_kind,
        batch_size=int(cfg.model.get("batch_size", 64)),
        balanced_sampler=balance == "sampler",
        seed=int(cfg.seed),
    )
    scheduler = build("scheduler", cfg.scheduler) if cfg.scheduler.get("_target_") else None
    module = ClassifierModule(
        net,
        len(labels),
        optimizer=build("optimizer", cfg.optimizer),
        scheduler=scheduler,
        class_weights=weights if balance == "class_weights" else None,
        lr=cfg.model.get("lr"),
    )
    settings = TrackingSettings.from_cfg(cfg.tracking)
    logger = MLFlowLogger(
        experiment_name=settings.experiment,
        tracking_uri=settings.resolved_uri(root),
        artifact_location=settings.artifact_location(root),
        run_name=f"train-{cfg.model.name}",
        tags={
            "stage": "train",
            "git_commit": lineage.git_commit,
            "data_hash": lineage.data_hash,
            "pipeline_run": lineage.pipeline_run,
            "model": str(cfg.model.name),
        },
    )
    history = EpochHistory()
    checkpoint = ModelCheckpoint(
        dirpath=work_dir,
        filename="best",
        monitor=MONITOR,
        mode="max",
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    stopping = EarlyStopping(monitor=MONITOR, mode="max", patience=int(cfg.trainer.patience))
    trainer_cfg = {k: v for k, v in cfg.trainer.items() if k not in TRAINER_EXTRAS}
    trainer: pl.Trainer = build(
        "trainer",
        OmegaConf.create(trainer_cfg),
        callbacks=[history, checkpoint, stopping],
        logger=logger,
        default_root_dir=str(work_dir),
    )
    logger.log_hyperparams(tracking.flatten(OmegaConf.to_container(cfg, resolve=True)))
    started = time.perf_counter()
    trainer.fit(module, datamodule=data)
    seconds = time.perf_counter() - started
    steps["fit"] = seconds
    if not trainer.is_global_zero:
        return FitResult(is_global_zero=False)
    best_path = Path(checkpoint.best_model_path)
    best = max(history.history, key=lambda row: row.get(MONITOR, -1.0))
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
        uri=settings.resolved_uri(root),
        records_path=lineage.records_path,
        data_hash=lineage.data_hash,
        rows=len(frame),
        checkpoint=best_path,
        model=net,
        example=example_input(net, sets["train"].features),
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


def _take(features: np.ndarray | list[np.ndarray], index: np.ndarray) -> Any:
    if isinstance(features, np.ndarray):
        return features[index]
    return [features[i] for i in index]
