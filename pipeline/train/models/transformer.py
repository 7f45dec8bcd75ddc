"""A small Transformer encoder trained from scratch on the MiniLM token ids."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.train.models.pooling import default_mask, masked_mean


class TransformerClassifier(nn.Module):
    """Token + learned position embeddings -> pre-norm encoder layers -> masked mean."""

    input_kind = "tokens"

    def __init__(
        self,
        num_labels: int,
        vocab_size: int = 30522,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 256,
        dropout: float = 0.1,
        max_length: int = 512,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.position = nn.Embedding(max_length, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, ff_dim, dropout, batch_first=True, norm_first=True
        )
        # No nested tensors: the fast path they enable does not export to ONNX.
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        mask = default_mask(input_ids, attention_mask)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.embed(input_ids) + self.position(positions).unsqueeze(0)
        x = self.encoder(self.dropout(x), src_key_padding_mask=mask == 0)
        return self.out(self.dropout(masked_mean(self.norm(x), mask)))
