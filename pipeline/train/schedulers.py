"""Learning-rate schedules by optimizer step, built from `conf/scheduler/*.yaml` (`_partial_`).

Each takes the optimizer and `total_steps` (Lightning's estimate for the whole fit), so
the config needs no interpolation of `trainer.max_epochs`.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(
    optimizer: Optimizer, total_steps: int, warmup_fraction: float = 0.1, min_factor: float = 0.0
) -> LambdaLR:
    """Linear warm-up, then cosine decay to `min_factor` of the base rate."""
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def warmup_linear(optimizer: Optimizer, total_steps: int, warmup_fraction: float = 0.1) -> LambdaLR:
    """Linear warm-up, then linear decay to zero (the usual BERT fine-tuning schedule)."""
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return LambdaLR(optimizer, factor)


def constant(optimizer: Optimizer, total_steps: int) -> LambdaLR:
    """The optimizer's own rate throughout."""
    del total_steps
    return LambdaLR(optimizer, lambda step: 1.0)
