"""Build the index directory (FAISS + vectors + BM25 terms + manifest) and publish it atomically."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.index.compressed import memory_footprint, write_faiss
from pipeline.index.factory import IndexSettings, recall_at_k, resolve_factory
from pipeline.index.keyword import TOKENIZER, build_terms, save_terms
from pipeline.index.manifest import (
    FORMAT_VERSION,
    KEYWORD_DIR,
    RIDS_FILE,
    VECTORS_FILE,
    content_hash,
    write_manifest,
)
from pipeline.io.atomic import atomic_dir

KEYWORD_ENGINE = "bm25-scipy-sparse"


def write_index_dir(
    directory: Path,
    rids: np.ndarray,
    vectors: np.ndarray,
    texts: list[str],
    settings: IndexSettings,
    encoder: dict[str, Any],
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build every index file into `directory` (not yet published); returns the manifest."""
    rids, vectors, texts = _in_rid_order(rids, vectors, texts)
    factory = resolve_factory(settings, len(rids), vectors.shape[1])
    start = time.perf_counter()
    index = write_faiss(directory, vectors, rids, factory, settings)
    build_seconds = time.perf_counter() - start
    recall = recall_at_k(index, vectors, rids, settings)
    np.save(directory / VECTORS_FILE, vectors)
    np.save(directory / RIDS_FILE, rids)
    terms = build_terms(texts, rids)
    save_terms(terms, directory / KEYWORD_DIR)
    manifest = {
        "format_version": FORMAT_VERSION,
        "encoder": encoder,
        "dim": int(vectors.shape[1]),
        "metric": settings.metric,
        "factory": factory,
        "build_params": settings.to_dict(),
        "records": len(rids),
        "data_hash": content_hash(rids, vectors),
        "source": source or {},
        "build_seconds": round(build_seconds, 3),
        "recall_at_10": recall["recall_at_10"],
        "recall": recall,
        "keyword": {
            "engine": KEYWORD_ENGINE,
            "tokenizer": TOKENIZER,
            "terms": len(terms.vocab),
            "docs": terms.n_docs,
        },
        "erased": 0,
        "memory": memory_footprint(directory, len(rids), settings),
    }
    write_manifest(directory, manifest)
    return manifest


def _in_rid_order(
    rids: np.ndarray, vectors: np.ndarray, texts: list[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The three inputs sorted by rid (int64, contiguous float32); lengths and rids checked."""
    rids = np.asarray(rids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(rids) != len(vectors) or len(rids) != len(texts):
        raise PipelineError(
            f"index build: {len(rids)} rids, {len(vectors)} vectors, {len(texts)} texts differ"
        )
    if len(rids) > 1 and not (np.diff(rids) >= 0).all():
        # Already sorted (the usual case): no copy, so a memory-mapped matrix stays mapped.
        order = np.argsort(rids, kind="stable")
        rids, vectors, texts = rids[order], vectors[order], [texts[i] for i in order]
    if len(rids) > 1 and (np.diff(rids) == 0).any():
        dup = int(rids[np.flatnonzero(np.diff(rids) == 0)[0]])
        raise PipelineError(f"index build: rid {dup} appears twice in the kept records")
    return rids, vectors, list(texts)


def publish_index(
    index_dir: str | Path,
    rids: np.ndarray,
    vectors: np.ndarray,
    texts: list[str],
    settings: IndexSettings,
    encoder: dict[str, Any],
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build into a temporary sibling and swap it in: readers see the old or the new index.

    The caller holds the writer lock over the published data (pipeline/service/writer.py).
    """
    with atomic_dir(index_dir) as tmp:
        return write_index_dir(tmp, rids, vectors, texts, settings, encoder, source)
