"""The autoencoder network and its Lightning module; anomaly score = reconstruction error."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn


class Autoencoder(nn.Module):
    """An MLP input -> hidden -> bottleneck -> hidden -> input over sentence vectors."""

    def __init__(self, input_dim: int = 384, hidden_dim: int = 128, bottleneck: int = 16) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.encoder = nn.Sequential(
            nn.Linear(input_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, bottleneck)
        )
        self.decoder = nn.Sequential(
            nn.Linear(bottleneck, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, input_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AutoencoderModule(pl.LightningModule):
    """Fits the network to reproduce its input (mean squared error)."""

    def __init__(self, net: nn.Module, lr: float, weight_decay: float) -> None:
        super().__init__()
        self.net, self.lr, self.weight_decay = net, lr, weight_decay

    def training_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> torch.Tensor:
        (x,) = batch
        loss = nn.functional.mse_loss(self.net(x), x)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def reconstruction_error(net: nn.Module, vectors: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Per row, the squared L2 distance between a vector and its reconstruction (float64)."""
    net.eval()
    out = np.empty(len(vectors), dtype=np.float64)
    with torch.no_grad():
        for lo in range(0, len(vectors), batch):
            x = torch.as_tensor(np.ascontiguousarray(vectors[lo : lo + batch], np.float32))
            out[lo : lo + batch] = ((net(x) - x) ** 2).sum(dim=1).double().numpy()
    return out
