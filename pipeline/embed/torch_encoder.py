"""Batch encoding with PyTorch: the transformer alone (no sentence-transformers), fused
attention, length-sorted batches, bfloat16 matmuls where the CPU has them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pipeline.embed.models import (
    cpu_count,
    cpu_has_native_bf16,
    length_sorted_batches,
    load_tokenizer,
    model_dir,
)
from pipeline.errors import UserInputError

PRECISIONS = ("auto", "float32", "bfloat16")


def resolve_precision(precision: str) -> str:
    """`auto` -> bfloat16 when the CPU computes it natively (AVX512-BF16/AMX), else float32."""
    if precision not in PRECISIONS:
        raise UserInputError(f"embed.precision {precision!r}: expected one of {PRECISIONS}")
    if precision != "auto":
        return precision
    # oneDNN would also emulate bf16 on plain AVX-512, slower than float32: ask for the real thing.
    return "bfloat16" if cpu_has_native_bf16() else "float32"


class TorchEncoder:
    """A sentence-transformers-compatible encoder: mean pooling over tokens, L2-normalised."""

    def __init__(self, model: str, max_length: int, precision: str = "auto") -> None:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(cpu_count())
        path = model_dir(model)
        self.tokenizer = load_tokenizer(path / "tokenizer.json", max_length)
        hf_logging.disable_progress_bar()  # "Loading weights" for a 90 MB file is noise
        # sdpa: PyTorch's fused scaled-dot-product attention kernel instead of eager matmuls.
        self.model = AutoModel.from_pretrained(str(path), attn_implementation="sdpa").eval()
        self.precision = resolve_precision(precision)
        self.dim = int(self.model.config.hidden_size)

    def encode(
        self,
        ids: Sequence[Sequence[int]],
        batch_size: int,
        on_batch: Callable[[np.ndarray, np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """Embed pre-tokenised texts; `on_batch(positions, vectors)` sees each batch as done."""
        import torch

        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        dtype = torch.bfloat16 if self.precision == "bfloat16" else torch.float32
        with torch.inference_mode():
            for positions, input_ids, mask in length_sorted_batches(ids, batch_size):
                vectors = self._forward(torch.from_numpy(input_ids), torch.from_numpy(mask), dtype)
                out[positions] = vectors
                if on_batch is not None:
                    on_batch(positions, vectors)
        return out

    def _forward(self, input_ids: Any, mask: Any, dtype: Any) -> np.ndarray:
        import torch

        # Autocast keeps LayerNorm and softmax in float32; only the matmuls run in bf16.
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return mean_pool_normalise(hidden.float(), mask)


def mean_pool_normalise(hidden: Any, mask: Any) -> np.ndarray:
    """sentence-transformers' Pooling(mean) + Normalize, exactly (same clamp and eps)."""
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(dim=1)
    pooled = summed / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
