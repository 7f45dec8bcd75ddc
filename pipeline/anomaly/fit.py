"""Fit the autoencoder on a matrix of vectors with Lightning and score every row.

Imports Lightning at module level: the stage imports this module only once its input is
known good. The core takes and returns arrays; the stage does the reading and writing.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, TensorDataset

from pipeline.anomaly.model import AutoencoderModule, reconstruction_error
from pipeline.anomaly.settings import AnomalySettings
from pipeline.errors import UserInputError
from pipeline.train.quiet import quiet_libraries


@dataclass
class AnomalyFit:
    """The fitted network, every row's score, the per-epoch loss and the fit's seconds."""

    net: torch.nn.Module | None  # None when there was nothing to fit
    scores: np.ndarray  # float64, one per input row
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


class _EpochLoss(pl.Callback):
    """The mean training loss of every epoch, for the report and MLflow."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.losses.append(float(trainer.callback_metrics["train_loss"]))


def build_net(settings: AnomalySettings, input_dim: int) -> torch.nn.Module:
    """The configured network (`anomaly.net`), checked against the vectors' width."""
    from hydra.errors import InstantiationException

    try:
        net = instantiate(settings.net)
    except InstantiationException as exc:
        raise UserInputError(f"config anomaly.net: {exc}") from exc
    width = getattr(net, "input_dim", input_dim)
    if width != input_dim:
        raise UserInputError(
            f"anomaly.net.input_dim={width}, but the embeddings have {input_dim} dimensions "
            "(embed.dim): set them equal"
        )
    return net


def fit_scores(vectors: np.ndarray, settings: AnomalySettings, logger: Any = False) -> AnomalyFit:
    """Train on every row (unsupervised: no split), then score every row."""
    quiet_libraries()
    torch.manual_seed(settings.seed)  # the weights' initialisation
    torch.set_num_threads(settings.threads)
    net = build_net(settings, vectors.shape[1])
    data = TensorDataset(torch.as_tensor(np.ascontiguousarray(vectors, np.float32)))
    loader = DataLoader(
        data,
        batch_size=settings.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    history = _EpochLoss()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=settings.epochs,
        deterministic=True,
        logger=logger,
        callbacks=[history],
        enable_checkpointing=False,  # the model is refitted each run; MLflow keeps its weights
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    started = time.perf_counter()
    with warnings.catch_warnings():
        # One process on a shared 2-core machine: extra loader workers would only compete.
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(AutoencoderModule(net, settings.lr, settings.weight_decay), loader)
    scores = reconstruction_error(net, vectors)
    return AnomalyFit(net, scores, history.losses, time.perf_counter() - started)
