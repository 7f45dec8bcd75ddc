"""The query encoder: the embed package's torch-free ONNX path, loaded on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def query_encoder(settings: Any, cache_dir: str | Path | None) -> Callable[[str], np.ndarray]:
    """A thread-safe `text -> float32 (dim,)` function; the ONNX model loads on the first call.

    Loading lazily keeps keyword-only searches free of the model. A missing ONNX export
    is a NotFoundError telling the user to build the index (which exports it); there is
    deliberately no fallback to torch, which would turn a 0.3 s search into 15 s.
    """
    lock = threading.Lock()
    loaded: list[Any] = []

    def encode(text: str) -> np.ndarray:
        with lock:
            if not loaded:
                from pipeline.embed.query import QueryEncoder

                loaded.append(QueryEncoder(settings, cache_dir or "data/cache/embeddings"))
        return np.asarray(loaded[0].encode(text), dtype=np.float32).ravel()

    return encode
