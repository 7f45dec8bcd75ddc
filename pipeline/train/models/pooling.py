"""Masked pooling shared by the token models (padding never contributes)."""

from __future__ import annotations

import torch


def default_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The attention mask, or one derived from the padding id 0 when it is not given."""
    return (input_ids != 0).long() if attention_mask is None else attention_mask


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the sequence axis of (n, t, d) where mask (n, t) is 1."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def masked_max(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the sequence axis of (n, t, d), ignoring padded positions."""
    fill = torch.finfo(hidden.dtype).min
    return hidden.masked_fill(mask.unsqueeze(-1) == 0, fill).max(1).values
