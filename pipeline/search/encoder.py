"""The query encoder: the embed package's torch-free ONNX path, loaded on first use, with
concurrent queries encoded together and recent ones cached."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.search.batcher import MicroBatcher


class QueryEncoding:
    """A thread-safe `text -> float32 (dim,)` function; the ONNX model loads on the first call.

    Loading lazily keeps keyword-only searches free of the model. A missing ONNX export
    is a NotFoundError telling the user to build the index (which exports it); there is
    deliberately no fallback to torch, which would turn a 0.3 s search into 15 s.

    `batch` > 1 encodes queries that arrive while a forward pass runs together in the next
    one (at most `batch`); 1 encodes each in its caller's thread. `cache` recent queries'
    vectors are kept (0: none); one cache per encoder, so the model is part of its key.
    `threads` is ONNX Runtime's intra-op thread count for one forward pass.
    """

    def __init__(
        self,
        settings: Any,
        cache_dir: str | Path | None,
        batch: int = 16,
        cache: int = 1024,
        threads: int = 1,
    ) -> None:
        self._settings = settings
        self._cache_dir = cache_dir or "data/cache/embeddings"
        self._threads = max(1, threads)
        self._load_lock = threading.Lock()
        self._model: Any = None
        self._batcher = (
            MicroBatcher(self.encode_many, batch, "query-encoder") if batch > 1 else None
        )
        self._cache_size = max(0, cache)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.cache_hits = 0

    @property
    def batcher(self) -> MicroBatcher | None:
        """The micro-batcher (None when batching is off); its counters show batch sizes."""
        return self._batcher

    def _loaded(self) -> Any:
        with self._load_lock:
            if self._model is None:
                from pipeline.embed.query import QueryEncoder

                self._model = QueryEncoder(self._settings, self._cache_dir, threads=self._threads)
            return self._model

    def encode_many(self, texts: list[str]) -> list[np.ndarray]:
        """Vectors of `texts` in one forward pass (padded to the longest), repeats encoded once."""
        unique = list(dict.fromkeys(texts))
        vectors = np.asarray(self._loaded().encode_many(unique), dtype=np.float32)
        vectors.flags.writeable = False  # rows are shared with the cache and other callers
        row = {text: i for i, text in enumerate(unique)}
        return [vectors[row[text]] for text in texts]

    def __call__(self, text: str) -> np.ndarray:
        # The tokenizer strips whitespace too, so stripped texts share one vector.
        key = text.strip()
        if self._cache_size:
            with self._cache_lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    self.cache_hits += 1
                    return hit
        vector = self._batcher(key) if self._batcher is not None else self.encode_many([key])[0]
        if self._cache_size:
            with self._cache_lock:
                self._cache[key] = vector
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return vector

    def close(self) -> None:
        """Stop the batching thread (queued queries are encoded first)."""
        if self._batcher is not None:
            self._batcher.close()


def query_encoder(
    settings: Any,
    cache_dir: str | Path | None,
    batch: int = 16,
    cache: int = 1024,
    threads: int = 1,
) -> QueryEncoding:
    """The query encoder of a Searcher (see QueryEncoding for the settings)."""
    return QueryEncoding(settings, cache_dir, batch=batch, cache=cache, threads=threads)
