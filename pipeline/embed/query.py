"""The query fast path: one text -> one vector with ONNX Runtime and `tokenizers` only.

Importing this module, building a QueryEncoder and encoding imports neither torch nor
transformers nor sentence-transformers, so `pipeline search` starts in a fraction of a
second. The ONNX export must exist: the index stage calls `ensure_query_model` (which
does need torch) when it builds the index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.embed.api import EmbedSettings
from pipeline.embed.models import tokenize_flagged
from pipeline.embed.onnx_encoder import OnnxEncoder
from pipeline.embed.onnx_paths import (
    FLOAT_FILE,
    INT8_FILE,
    TOKENIZER_FILE,
    is_exported,
    onnx_dir,
)
from pipeline.errors import NotFoundError


def query_model_file(settings: EmbedSettings, cache_dir: str | Path) -> Path:
    """The ONNX file queries use: int8 if documents are int8, else float (matches torch)."""
    name = INT8_FILE if settings.backend == "onnx-int8" else FLOAT_FILE
    return onnx_dir(settings.model, cache_dir) / name


def ensure_query_model(settings: EmbedSettings, cache_dir: str | Path) -> Path:
    """Export the encoder to ONNX under `cache_dir` if missing (needs torch); return the file."""
    from pipeline.embed.onnx_export import ensure_onnx

    ensure_onnx(settings.model, cache_dir)
    return query_model_file(settings, cache_dir)


class QueryEncoder:
    """Embeds query strings into the same space as `embed_texts` documents."""

    def __init__(self, settings: EmbedSettings, cache_dir: str | Path, threads: int = 1) -> None:
        directory = onnx_dir(settings.model, cache_dir)
        if not is_exported(directory):
            raise NotFoundError(
                f"{directory}: no ONNX export of {settings.model}; build the index first "
                "(`dvc repro index`), which exports it"
            )
        # threads=1 by default (search.encode_threads): two halve an idle query's encode
        # (4.6 -> 2.5 ms here), but concurrent requests already fill the cores and two per
        # forward pass oversubscribe them (benchmarks/RESULTS.md, service under load).
        self._encoder = OnnxEncoder(
            query_model_file(settings, cache_dir),
            directory / TOKENIZER_FILE,
            settings.max_length,
            threads=threads,
        )
        self.dim = self._encoder.dim

    @property
    def tokenizer(self) -> Any:
        """The encoder's tokenizer (max_length truncation), for truncation flags alone."""
        return self._encoder.tokenizer

    def encode(self, text: str) -> np.ndarray:
        """The L2-normalised float32 vector (dim,) of one query."""
        return self.encode_many([text])[0]

    def encode_many(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors (n, dim) of several queries."""
        return self.encode_flagged(texts)[0]

    def encode_flagged(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Vectors (n, dim) of several texts, and whether each was cut at max_length tokens."""
        ids, truncated = tokenize_flagged(self._encoder.tokenizer, texts)
        return self._encoder.encode(ids, batch_size=max(1, len(ids))), truncated
