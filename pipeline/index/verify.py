"""`pipeline index verify`: the index, its keyword twin and the store hold the same records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.index.compressed import read_faiss
from pipeline.index.keyword import load_terms, stale_tokenizer
from pipeline.index.manifest import (
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

    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    index = read_faiss(index_dir, manifest)
    vector_ids = np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
    terms = load_terms(index_dir / KEYWORD_DIR)
    kept = _kept_rids(store_path)
    missing = np.setdiff1d(kept, vector_ids)
    extra = np.setdiff1d(vector_ids, kept)
    problems = [
        *_coverage_problems(missing, extra, vector_ids),
        *_file_problems(index_dir, index.ntotal, vector_ids, manifest),
        *_keyword_problems(vector_ids, terms.rids),
        *filter(None, [stale_tokenizer(terms, index_dir / KEYWORD_DIR)]),
    ]
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


def _kept_rids(store_path: str | Path) -> np.ndarray:
    """The rids of the store's kept records (a read-only connection, closed at once)."""
    from pipeline.store.db import connect
    from pipeline.store.search import kept_rids

    con = connect(store_path, read_only=True)
    try:
        return kept_rids(con)
    finally:
        con.close()


def _coverage_problems(missing: np.ndarray, extra: np.ndarray, vector_ids: np.ndarray) -> list[str]:
    """Kept records without a vector, vectors of no kept record, a rid indexed twice."""
    problems: list[str] = []
    if len(missing):
        problems.append(f"{len(missing)} kept record(s) have no vector, e.g. rid {_ids(missing)}")
    if len(extra):
        problems.append(f"{len(extra)} vector id(s) are not kept records, e.g. rid {_ids(extra)}")
    if len(np.unique(vector_ids)) != len(vector_ids):
        problems.append("the FAISS index holds a rid more than once")
    return problems


def _file_problems(
    index_dir: Path, ntotal: int, vector_ids: np.ndarray, manifest: dict[str, Any]
) -> list[str]:
    """The FAISS index, rids.npy, vectors.npy and the manifest disagreeing with each other."""
    rids = np.load(index_dir / RIDS_FILE)
    vectors = np.load(index_dir / VECTORS_FILE, mmap_mode="r")
    problems: list[str] = []
    if ntotal != manifest.get("records"):
        problems.append(f"FAISS holds {ntotal} vectors, manifest says {manifest.get('records')}")
    if not np.array_equal(vector_ids, rids):
        problems.append(f"{RIDS_FILE} differs from the FAISS id map")
    if len(vectors) != len(rids):
        problems.append(f"{VECTORS_FILE} has {len(vectors)} rows for {len(rids)} rids")
    elif content_hash(rids, vectors) != manifest.get("data_hash"):
        problems.append("vectors or rids do not match the manifest's data_hash")
    return problems


def _keyword_problems(vector_ids: np.ndarray, keyword_rids: np.ndarray) -> list[str]:
    """Vectors without a keyword document, or keyword documents without a vector."""
    kw_missing = np.setdiff1d(vector_ids, keyword_rids)
    kw_extra = np.setdiff1d(keyword_rids, vector_ids)
    if not len(kw_missing) and not len(kw_extra):
        return []
    return [
        f"keyword index disagrees: {len(kw_missing)} vector id(s) without a keyword doc, "
        f"{len(kw_extra)} keyword doc(s) without a vector"
    ]


def _ids(values: np.ndarray) -> str:
    shown = ", ".join(str(int(v)) for v in values[:SAMPLE])
    return shown + (", ..." if len(values) > SAMPLE else "")
