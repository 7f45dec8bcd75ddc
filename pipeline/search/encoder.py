"""The query encoder: the embed package's torch-free path when present, loaded on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def query_encoder(settings: Any, cache_dir: str | Path | None) -> Callable[[str], np.ndarray]:
    """A thread-safe `text -> float32 (dim,)` function; the model loads on the first call."""
    lock = threading.Lock()
    loaded: list[Callable[[str], np.ndarray]] = []

    def encode(text: str) -> np.ndarray:
        with lock:
            if not loaded:
                loaded.append(_load(settings, cache_dir))
        return np.asarray(loaded[0](text), dtype=np.float32).ravel()

    return encode


def _load(settings: Any, cache_dir: str | Path | None) -> Callable[[str], np.ndarray]:
    from pipeline.embed import embed_texts

    return lambda text: embed_texts([text], settings, cache_dir=None)[0]
