"""Remove records from a published index (user erasure) and republish it atomically.

The FAISS index is rebuilt from the kept vectors with the manifest's factory and build
parameters rather than edited in place: HNSW cannot remove vectors, and removing from an
IDMap over IVF would break the row = inner-id order the searcher's pre-filter relies on.
Nothing is re-embedded, so this costs one index build, not an index stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.index.factory import IndexSettings, build_faiss, recall_at_k
from pipeline.index.keyword import drop_rows, load_terms, save_terms
from pipeline.index.manifest import (
    FAISS_FILE,
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
    import faiss

    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    held = np.load(index_dir / RIDS_FILE)
    gone = np.isin(held, np.fromiter((int(r) for r in rids), dtype=np.int64, count=len(rids)))
    removed = int(gone.sum())
    if removed == 0:
        return 0
    keep = ~gone
    vectors = np.ascontiguousarray(np.load(index_dir / VECTORS_FILE)[keep])
    kept_rids = held[keep]
    terms = drop_rows(load_terms(index_dir / KEYWORD_DIR), keep)
    settings = IndexSettings(**manifest["build_params"])
    index = build_faiss(vectors, kept_rids, manifest["factory"], settings)
    recall = recall_at_k(index, vectors, kept_rids, settings)
    with atomic_dir(index_dir) as tmp:
        faiss.write_index(index, str(tmp / FAISS_FILE))
        np.save(tmp / VECTORS_FILE, vectors)
        np.save(tmp / RIDS_FILE, kept_rids)
        save_terms(terms, tmp / KEYWORD_DIR)
        manifest.update(
            records=len(kept_rids),
            data_hash=content_hash(kept_rids, vectors),
            recall_at_10=recall["recall_at_10"],
            recall=recall,
            erased=int(manifest.get("erased", 0)) + removed,
            keyword={**manifest["keyword"], "docs": terms.n_docs, "terms": len(terms.vocab)},
        )
        write_manifest(tmp, manifest)
    return removed
