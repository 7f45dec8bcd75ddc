"""`pipeline index verify`: the index, its keyword twin and the store hold the same records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.index.keyword import load_terms
from pipeline.index.manifest import (
    FAISS_FILE,
    KEYWORD_DIR,
    RIDS_FILE,
    VECTORS_FILE,
    content_hash,
    read_manifest,
)

SAMPLE = 5  # ids shown per problem; the counts are always complete


def verify_index(index_dir: str | Path, store_path: str | Path) -> dict[str, Any]:
    """Compare vector ids, keyword rows, manifest and kept records; `ok` is False on any gap."""
    import faiss

    from pipeline.store.db import connect
    from pipeline.store.search import kept_rids

    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    index = faiss.read_index(str(index_dir / FAISS_FILE))
    vector_ids = np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
    rids = np.load(index_dir / RIDS_FILE)
    vectors = np.load(index_dir / VECTORS_FILE, mmap_mode="r")
    terms = load_terms(index_dir / KEYWORD_DIR)
    con = connect(store_path, read_only=True)
    try:
        kept = kept_rids(con)
    finally:
        con.close()

    problems: list[str] = []
    missing = np.setdiff1d(kept, vector_ids)
    extra = np.setdiff1d(vector_ids, kept)
    if len(missing):
        problems.append(f"{len(missing)} kept record(s) have no vector, e.g. rid {_ids(missing)}")
    if len(extra):
        problems.append(f"{len(extra)} vector id(s) are not kept records, e.g. rid {_ids(extra)}")
    if len(np.unique(vector_ids)) != len(vector_ids):
        problems.append("the FAISS index holds a rid more than once")
    if index.ntotal != manifest.get("records"):
        problems.append(
            f"FAISS holds {index.ntotal} vectors, manifest says {manifest.get('records')}"
        )
    if not np.array_equal(vector_ids, rids):
        problems.append(f"{RIDS_FILE} differs from the FAISS id map")
    if len(vectors) != len(rids):
        problems.append(f"{VECTORS_FILE} has {len(vectors)} rows for {len(rids)} rids")
    elif content_hash(rids, vectors) != manifest.get("data_hash"):
        problems.append("vectors or rids do not match the manifest's data_hash")
    kw_missing = np.setdiff1d(vector_ids, terms.rids)
    kw_extra = np.setdiff1d(terms.rids, vector_ids)
    if len(kw_missing) or len(kw_extra):
        problems.append(
            f"keyword index disagrees: {len(kw_missing)} vector id(s) without a keyword doc, "
            f"{len(kw_extra)} keyword doc(s) without a vector"
        )
    return {
        "ok": not problems,
        "problems": problems,
        "index_dir": str(index_dir),
        "vectors": int(index.ntotal),
        "keyword_docs": int(terms.n_docs),
        "kept_records": len(kept),
        "missing": len(missing),
        "extra": len(extra),
        "missing_sample": [int(r) for r in missing[:SAMPLE]],
        "extra_sample": [int(r) for r in extra[:SAMPLE]],
        "factory": manifest.get("factory"),
        "data_hash": manifest.get("data_hash"),
    }


def _ids(values: np.ndarray) -> str:
    shown = ", ".join(str(int(v)) for v in values[:SAMPLE])
    return shown + (", ..." if len(values) > SAMPLE else "")
