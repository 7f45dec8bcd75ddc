"""A small Transformer encoder trained from scratch on the MiniLM token ids.

The block is written out (pre-norm attention + feed-forward, ~20 lines) rather than taken
from `nn.TransformerEncoderLayer`: that layer's inference fast path has no ONNX export and
its traced attention bakes the example's batch size into reshapes, so the exported graph
failed on other batch sizes. Here no shape is read from the input.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.train.inputs import InputKind
from pipeline.train.models.pooling import default_mask, masked_mean


class EncoderBlock(nn.Module):
    """Pre-norm multi-head self-attention and feed-forward, each with a residual."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = (
            part.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (n, heads, t, d_head)
            for part in self.qkv(self.norm1(x)).chunk(3, dim=-1)
        )
        keep = (mask != 0)[:, None, None, :]  # padded keys get no attention
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=keep, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.drop(self.proj(attended.transpose(1, 2).flatten(2)))
        return x + self.drop(self.ff(self.norm2(x)))


class TransformerClassifier(nn.Module):
    """Token + learned position embeddings -> encoder blocks -> masked mean -> logits."""

    input_kind = InputKind.TOKENS

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
        self.blocks = nn.ModuleList(
            EncoderBlock(d_model, num_heads, ff_dim, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        mask = default_mask(input_ids, attention_mask)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.dropout(self.embed(input_ids) + self.position(positions).unsqueeze(0))
        for block in self.blocks:
            x = block(x, mask)
        return self.out(self.dropout(masked_mean(self.norm(x), mask)))
