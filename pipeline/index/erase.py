"""Remove records from a published index (user erasure) and republish it atomically.

The FAISS index is rebuilt from the kept vectors with the manifest's factory and build
parameters rather than edited in place: HNSW cannot remove vectors, and removing from an
IDMap over IVF would break the row = inner-id order the searcher's pre-filter relies on.
Nothing is re-embedded, so this costs one index build, not an index stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.index.compressed import memory_footprint, write_faiss
from pipeline.index.factory import IndexSettings, recall_at_k
from pipeline.index.keyword import drop_rows, load_terms, save_terms
from pipeline.index.manifest import (
    KEYWORD_DIR,
    RIDS_FILE,
    VECTORS_FILE,
    content_hash,
    read_manifest,
    write_manifest,
)
from pipeline.io.atomic import atomic_dir


def erase_rids(index_dir: str | Path, rids: set[int]) -> int:
    """Drop these rids' vectors and keyword docs; returns how many were in the index.

    The caller holds the writer lock over the published data (pipeline.service.writer).
    """
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    held = np.load(index_dir / RIDS_FILE)
    gone = np.isin(held, np.fromiter((int(r) for r in rids), dtype=np.int64, count=len(rids)))
    removed = int(gone.sum())
    if removed == 0:
        return 0
    keep = ~gone
    kept_rids = held[keep]
    terms = drop_rows(load_terms(index_dir / KEYWORD_DIR), keep)
    settings = IndexSettings(**manifest["build_params"])
    with atomic_dir(index_dir) as tmp:
        vectors = _kept_rows(index_dir / VECTORS_FILE, keep, tmp / VECTORS_FILE)
        index = write_faiss(tmp, vectors, kept_rids, manifest["factory"], settings)
        recall = recall_at_k(index, vectors, kept_rids, settings)
        np.save(tmp / RIDS_FILE, kept_rids)
        save_terms(terms, tmp / KEYWORD_DIR)
        manifest.update(
            records=len(kept_rids),
            data_hash=content_hash(kept_rids, vectors),
            recall_at_10=recall["recall_at_10"],
            recall=recall,
            erased=int(manifest.get("erased", 0)) + removed,
            memory=memory_footprint(tmp, len(kept_rids), settings),
            keyword={**manifest["keyword"], "docs": terms.n_docs, "terms": len(terms.vocab)},
        )
        write_manifest(tmp, manifest)
    return removed


def _kept_rows(source: Path, keep: np.ndarray, target: Path, block: int = 65_536) -> np.ndarray:
    """Copy the kept rows of vectors.npy into `target` block by block; returns it mapped.

    Neither matrix is held in RAM: an erasure from a memory-mapped 100M-vector index
    (index=ivfpq, ivfpq_disk) needs a block of rows in memory, not 150 GB.
    """
    src = np.load(source, mmap_mode="r")
    rows = np.flatnonzero(keep)
    out = np.lib.format.open_memmap(
        target, mode="w+", dtype=np.float32, shape=(len(rows), src.shape[1])
    )
    for lo in range(0, len(rows), block):
        out[lo : lo + block] = src[rows[lo : lo + block]]
    out.flush()
    del out
    return np.load(target, mmap_mode="r")
