"""Bidirectional GRU over token embeddings, with masked max and mean pooling."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.train.inputs import InputKind
from pipeline.train.models.pooling import default_mask, masked_max, masked_mean


class BiGRU(nn.Module):
    """Recurrent classifier trained from scratch on the MiniLM token ids."""

    input_kind = InputKind.TOKENS

    def __init__(
        self,
        num_labels: int,
        vocab_size: int = 30522,
        embed_dim: int = 128,
        hidden_dim: int = 128,
        num_layers: int = 1,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        # Padded positions are pooled out rather than packed: packing does not export to ONNX.
        self.gru = nn.GRU(
            embed_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(4 * hidden_dim, num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        mask = default_mask(input_ids, attention_mask)
        hidden, _ = self.gru(self.dropout(self.embed(input_ids)))
        pooled = torch.cat([masked_max(hidden, mask), masked_mean(hidden, mask)], dim=1)
        return self.out(self.dropout(pooled))
