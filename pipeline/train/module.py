"""The LightningModule and LightningDataModule around any network in `models/`.

Imports Lightning at module level: import this module only inside functions of the stage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score


class ClassifierModule(pl.LightningModule):
    """Cross-entropy training with per-epoch loss, accuracy and macro-F1 for train and val."""

    def __init__(
        self,
        net: nn.Module,
        num_labels: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        class_weights: torch.Tensor | None = None,
        lr: float | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.lr = lr
        self.loss = nn.CrossEntropyLoss(weight=class_weights)
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{name}": metric
                for stage in ("train", "val")
                for name, metric in (
                    ("acc", MulticlassAccuracy(num_labels, average="micro")),
                    ("macro_f1", MulticlassF1Score(num_labels, average="macro")),
                )
            }
        )

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(*inputs)

    def _step(self, batch: Sequence[torch.Tensor], stage: str) -> torch.Tensor:
        *inputs, labels = batch
        logits = self.net(*inputs)
        loss = self.loss(logits, labels)
        preds = logits.argmax(dim=1)
        size = len(labels)
        self.log(
            f"{stage}_loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=size
        )
        for name in ("acc", "macro_f1"):
            metric = self.metrics[f"{stage}_{name}"]
            metric(preds, labels)
            self.log(f"{stage}_{name}", metric, on_step=False, on_epoch=True, batch_size=size)
        return loss

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> Any:
        extra = {} if self.lr is None else {"lr": self.lr}
        if hasattr(self.net, "param_groups"):
            base_lr = self.lr if self.lr is not None else _default_lr(self.optimizer_factory)
            params: Any = self.net.param_groups(base_lr)
        else:
            params = [p for p in self.net.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params, **extra)
        if self.scheduler_factory is None:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = self.scheduler_factory(optimizer, total_steps=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def _default_lr(factory: Callable[..., Any]) -> float:
    keywords = getattr(factory, "keywords", {}) or {}
    return float(keywords.get("lr", 1e-3))


class RowsDataset(Dataset):
    """Rows of features (an (n, d) float array, or token-id arrays) with integer labels."""

    def __init__(self, features: np.ndarray | list[np.ndarray], labels: np.ndarray) -> None:
        self.features = features
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.features[index], int(self.labels[index])


class ClassifierDataModule(pl.LightningDataModule):
    """Train and val loaders over pre-computed features; optional class-balanced sampling."""

    def __init__(
        self,
        train: RowsDataset,
        val: RowsDataset,
        collate: Callable[[Sequence[tuple[Any, int]]], tuple[torch.Tensor, ...]],
        batch_size: int = 64,
        balanced_sampler: bool = False,
        seed: int = 42,
    ) -> None:
        super().__init__()
        self.train_set = train
        self.val_set = val
        self.collate = collate  # pipeline.train.inputs.Collate: (*network inputs, labels)
        self.batch_size = batch_size
        self.balanced_sampler = balanced_sampler
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        if self.balanced_sampler:
            counts = np.bincount(self.train_set.labels)
            weights = 1.0 / counts[self.train_set.labels]
            sampler = WeightedRandomSampler(
                torch.as_tensor(weights, dtype=torch.double),
                num_samples=len(weights),
                generator=generator,
            )
            return DataLoader(
                self.train_set, self.batch_size, sampler=sampler, collate_fn=self.collate
            )
        return DataLoader(
            self.train_set,
            self.batch_size,
            shuffle=True,
            generator=generator,
            collate_fn=self.collate,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, self.batch_size, collate_fn=self.collate)
