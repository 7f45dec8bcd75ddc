"""Linear probe: an MLP head over frozen, cached MiniLM sentence embeddings."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.train.inputs import InputKind


class ProbeHead(nn.Module):
    """Embedding (n, input_dim) -> logits; the encoder never runs during training."""

    input_kind = InputKind.EMBEDDING

    def __init__(
        self, num_labels: int, input_dim: int = 384, hidden_dim: int = 256, dropout: float = 0.1
    ) -> None:
        super().__init__()
        # hidden_dim 0 gives a true linear probe (one affine map).
        if hidden_dim:
            self.layers = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(input_dim, hidden_dim),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden_dim, num_labels),
            )
        else:
            self.layers = nn.Sequential(nn.Dropout(dropout), nn.Linear(input_dim, num_labels))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.layers(embedding)
