"""One loaded, immutable snapshot of the index directory and its vector/keyword rankings.

A Searcher swaps whole snapshots on reload; a search holds its own reference, so it
finishes on the snapshot it started with. Rows are positions in the sorted rid array,
which is also the FAISS inner index's id order (IDMap2 added in rid order).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import BusyError, PipelineError
from pipeline.index.compressed import ReadAhead, gathered_scores, read_faiss, refined_search
from pipeline.index.factory import REFINE_K_FACTOR, apply_search_params
from pipeline.index.keyword import BM25, load_terms, stale_tokenizer, top_rows
from pipeline.index.manifest import (
    KEYWORD_DIR,
    MANIFEST,
    RIDS_FILE,
    VECTORS_FILE,
    read_manifest,
)
from pipeline.io.stamp import Stamp, file_stamp

# Scoring one allowed row exactly (gather its float vector, one dot product) costs about as
# much as an IVF filtered scan checking this many codes against the filter: ~0.4 us per
# row (2,048-row chunks) vs 10-14 ns per code, 1M 384-d vectors in the page cache
# (benchmarks/index_filter_paths.py). Sets the IVF side of the exact-or-index choice.
EXACT_ROW_COST = 32
# With search.read_ahead on, each row also costs one posix_fadvise request: ~0.75 us with the
# row in the page cache (docs/scaling.md, "Cold reads"), ~75 codes' worth.
READ_AHEAD_ROW_COST = 75


class IndexChanged(BusyError):
    """The index was republished after this snapshot loaded; a part loaded lazily (the
    keyword matrix) would not match it. Reload and retry (exit 4 / 503 if it persists)."""


def signature(index_dir: Path) -> Stamp | None:
    """Identity of the published manifest: a republish renames a new file into place."""
    return file_stamp(index_dir / MANIFEST)


@dataclass
class IndexState:
    """The loaded index directory: FAISS index, vectors, rids, BM25 (lazily), manifest."""

    index_dir: Path
    manifest: dict[str, Any]
    signature: Stamp | None
    index: Any  # faiss.IndexIDMap2
    inner: Any  # the index inside it; its ids are rows
    vectors: np.ndarray  # float32 (n, dim), memory-mapped
    rids: np.ndarray  # int64 (n,), sorted
    kind: str  # flat | hnsw | ivf | other: how a filtered search is tuned
    ivf: Any = None  # kind ivf: the IVF index inside `inner` (its nlist and nprobe)
    refine_k: int = 0  # > 0: re-rank refine_k*n PQ candidates from the memory-mapped vectors
    read_ahead: ReadAhead | None = None  # request the rows a query gathers before it gathers
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    _bm25: BM25 | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _bitmaps: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _bitmap_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(
        cls,
        index_dir: str | Path,
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
        read_ahead: bool | str = "auto",
    ) -> IndexState:
        """Load a published index directory (read-only).

        `read_ahead` (search.read_ahead): request from disk, all at once, the rows of
        vectors.npy a query re-ranks or scores before gathering them. `auto` turns it on for
        indexes that keep the floats on disk (`refine: mmap`: ivfpq, ivfpq_disk).
        """
        import faiss

        index_dir = Path(index_dir)
        ahead = None
        for _ in range(3):  # atomic_dir has a rename-aside window with no directory: retry
            if ahead is not None:
                ahead.close()
            sig = signature(index_dir)
            manifest = read_manifest(index_dir)
            build = manifest.get("build_params", {})
            refine_k = build.get("refine_k_factor", 0) if build.get("refine") == "mmap" else 0
            wanted = refine_k > 0 if read_ahead == "auto" else bool(read_ahead)
            try:
                index = read_faiss(index_dir, manifest)
                vectors = np.load(index_dir / VECTORS_FILE, mmap_mode="r")
                ahead = ReadAhead.of(index_dir / VECTORS_FILE, vectors) if wanted else None
                rids = np.load(index_dir / RIDS_FILE)
            except (FileNotFoundError, RuntimeError):
                continue
            if signature(index_dir) == sig:  # so the file read ahead is the one mapped
                break
        else:
            raise PipelineError(f"{index_dir}: index files changed or vanished while loading")
        apply_search_params(index, build.get("ef_search", 64), build.get("nprobe", 16))
        inner = faiss.downcast_index(index.index)
        kind = _kind(inner)
        return cls(
            index_dir=index_dir,
            manifest=manifest,
            signature=sig,
            index=index,
            inner=inner,
            vectors=vectors,
            rids=rids,
            kind=kind,
            ivf=faiss.extract_index_ivf(inner) if kind == "ivf" else None,
            refine_k=refine_k,
            read_ahead=ahead,
            bm25_k1=bm25_k1,
            bm25_b=bm25_b,
        )

    @property
    def bm25(self) -> BM25:
        """BM25 over the same rows, loaded on first keyword query (vector-only users skip it)."""
        with self._lock:
            if self._bm25 is None:
                # Loaded after the rest: the directory may have been republished since (an
                # erasure, a build), and its keyword files then belong to another snapshot.
                try:
                    terms = load_terms(self.index_dir / KEYWORD_DIR)
                except PipelineError:
                    if signature(self.index_dir) != self.signature:
                        raise IndexChanged(f"{self.index_dir}: republished; retry") from None
                    raise
                if signature(self.index_dir) != self.signature:
                    raise IndexChanged(f"{self.index_dir}: republished; retry")
                if not np.array_equal(terms.rids, self.rids):
                    raise PipelineError(
                        f"{self.index_dir}: keyword index rows differ from the vector index; "
                        "run `pipeline index verify`"
                    )
                stale = stale_tokenizer(terms, self.index_dir / KEYWORD_DIR)
                if stale:  # its terms would not match this version's query terms
                    raise PipelineError(stale)
                self._bm25 = BM25(terms, self.bm25_k1, self.bm25_b)
            return self._bm25

    def rows_of(self, rids: np.ndarray) -> np.ndarray:
        """Rows of these (sorted) rids; rids the index does not hold are dropped."""
        rows = np.searchsorted(self.rids, rids)
        inside = rows < len(self.rids)
        rows, rids = rows[inside], rids[inside]
        return rows[self.rids[rows] == rids]

    def vector_top(
        self, query: np.ndarray, n: int, rows: np.ndarray | None, exact_below: int, ef_max: int
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """Best n rows by inner product, among `rows` when given; also names the strategy."""
        total = len(self.rids)
        n = min(n, total if rows is None else len(rows))
        if n <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), "empty"
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if rows is None:
            scores, found = self._search(query, n)
            keep = found[0] >= 0
            return found[0][keep], scores[0][keep], "index"
        if len(rows) > exact_below and not self._exact_is_cheaper(len(rows), total):
            params = self._filtered_params(rows, len(rows) / total, ef_max)
            scores, found = self._search(query, n, params)
            keep = found[0] >= 0
            if keep.sum() == n:
                return found[0][keep], scores[0][keep], "index-prefilter"
            # The graph or the probed lists ran out of allowed neighbours: fall through to
            # the exact search so a filter never returns fewer than k when k records match.
        # A small allowed set: scoring just those vectors is exact and cheaper than walking
        # a graph or lists where most neighbours are filtered out.
        scores = gathered_scores(self.vectors, rows, query[0], read_ahead=self.read_ahead)
        chosen, chosen_scores = top_rows(scores, np.arange(len(rows)), n)
        return rows[chosen], chosen_scores, "exact-subset"

    def _search(self, query: np.ndarray, n: int, params: Any = None) -> tuple[Any, Any]:
        """FAISS search of the inner index, PQ candidates re-ranked exactly when configured."""
        if self.refine_k:
            return refined_search(
                self.inner, self.vectors, query, n, self.refine_k, params, self.read_ahead
            )
        return self.inner.search(query, n, params=params)

    def _filtered_nprobe(self, selectivity: float) -> int:
        """IVF lists probed under a filter: more as it narrows, since the allowed neighbours
        sit further out. widen**0.6 measured recall@10 >= 0.95 at 1% of 1M clustered
        vectors (widen**0.5 gave 0.94)."""
        widen = 1.0 / max(selectivity, 1e-9)
        return int(min(self.ivf.nlist, math.ceil(self.ivf.nprobe * widen**0.6)))

    def _exact_is_cheaper(self, allowed: int, total: int) -> bool:
        """Whether scoring the allowed rows exactly costs less than the filtered IVF scan
        (which checks every code of the probed lists against the filter). Graphs and flat
        indexes keep the `exact_below` rule alone."""
        if self.kind != "ivf":
            return False
        nlist = self.ivf.nlist
        scanned = total * min(1.0, self._filtered_nprobe(allowed / total) / nlist)
        row_cost = EXACT_ROW_COST + (READ_AHEAD_ROW_COST if self.read_ahead else 0)
        return allowed * row_cost <= scanned

    def _filtered_params(self, rows: np.ndarray, selectivity: float, ef_max: int) -> Any:
        """FAISS search parameters restricted to `rows`, with a search widened by 1/selectivity."""
        import faiss

        bitmap = self._bitmap(rows)
        selector = faiss.IDSelectorBitmap(len(self.rids), faiss.swig_ptr(bitmap))
        widen = 1.0 / max(selectivity, 1e-9)
        refine = isinstance(self.inner, faiss.IndexRefine)
        if self.kind == "hnsw":
            base = faiss.downcast_index(self.inner).hnsw.efSearch
            ef = int(min(max(base, math.ceil(base * widen)), max(ef_max, base)))
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
        elif self.kind == "ivf":
            nprobe = self._filtered_nprobe(selectivity)
            params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        keep = (bitmap, selector, params)  # FAISS reads these during the search: keep them alive
        if refine:
            # IVF-PQ + exact re-rank: the base index filters, the refine step re-scores.
            params = faiss.IndexRefineSearchParameters(
                sel=selector, base_index_params=params, k_factor=REFINE_K_FACTOR
            )
        params._keep = keep
        return params

    def _bitmap(self, rows: np.ndarray) -> np.ndarray:
        """The selector bitmap of `rows`, memoised for the (cached) row arrays of recent filters."""
        key = id(rows)
        with self._bitmap_lock:
            hit = self._bitmaps.get(key)
            if hit is not None and hit[0] is rows:
                return hit[1]
        mask = np.zeros(len(self.rids), dtype=bool)
        mask[rows] = True
        bitmap = np.packbits(mask, bitorder="little")
        with self._bitmap_lock:
            if len(self._bitmaps) >= 64:
                self._bitmaps.pop(next(iter(self._bitmaps)))
            self._bitmaps[key] = (rows, bitmap)  # holding `rows` keeps its id from being reused
        return bitmap

    def keyword_top(
        self, text: str, n: int, rows: np.ndarray | None, scores: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best n rows by BM25 (positive scores only), among `rows` when given.

        `scores`: this query's BM25 of every row when the caller already has it (hybrid).
        """
        return self.bm25.top(text, n, rows, scores)

    def vector_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact inner products of given rows with the query."""
        return np.asarray(self.vectors[rows] @ np.asarray(query, np.float32).ravel(), np.float32)


def _kind(inner: Any) -> str:
    import faiss

    if hasattr(inner, "hnsw"):
        return "hnsw"
    try:
        faiss.extract_index_ivf(inner)
        return "ivf"
    except RuntimeError:
        return "flat" if isinstance(inner, faiss.IndexFlat) else "other"


__all__ = ["IndexState", "signature", "top_rows"]
