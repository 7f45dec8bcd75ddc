"""TextCNN (Kim, 2014): parallel 1-D convolutions over token embeddings, max-pooled."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pipeline.train.inputs import InputKind
from pipeline.train.models.pooling import default_mask, masked_max


class TextCNN(nn.Module):
    """Convolutional classifier trained from scratch on the MiniLM token ids."""

    input_kind = InputKind.TOKENS

    def __init__(
        self,
        num_labels: int,
        vocab_size: int = 30522,
        embed_dim: int = 128,
        kernel_sizes: Sequence[int] = (3, 4, 5),
        channels: int = 100,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        # padding k//2 keeps short inputs (a few tokens) valid for every kernel size.
        self.convs = nn.ModuleList(
            nn.Conv1d(embed_dim, channels, k, padding=k // 2) for k in kernel_sizes
        )
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(channels * len(kernel_sizes), num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        mask = default_mask(input_ids, attention_mask)
        x = self.embed(input_ids).transpose(1, 2)  # (n, d, t)
        length = input_ids.shape[1]
        pooled = [
            masked_max(torch.relu(conv(x))[:, :, :length].transpose(1, 2), mask)
            for conv in self.convs
        ]
        return self.out(self.dropout(torch.cat(pooled, dim=1)))
