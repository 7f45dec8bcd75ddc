"""FAISS index from a factory string (conf/index/), `auto` chosen by collection size.

The `auto` rule: below `flat_below` records (50k) exact Flat search is fast enough and
exact; up to `ivf_above` (1M) HNSW gives sub-millisecond queries without training; beyond,
IVF with 4*sqrt(n) lists keeps build time and memory linear. Vector ids are the store's
rids (an IndexIDMap2 around the index), added in sorted rid order.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.errors import UserInputError
from pipeline.index.compressed import (
    INVLISTS_MODES,
    REFINE_MODES,
    compact,
    log_add_progress,
    pq_bytes,
    refined_search,
)

log = logging.getLogger(__name__)

# IVF-PQ + RFlat: re-rank this many times k PQ candidates exactly (PQ alone ranks coarsely).
REFINE_K_FACTOR = 8


@dataclass(frozen=True)
class IndexSettings:
    name: str = "auto"
    factory: str = "auto"  # a FAISS factory string, `{nlist}` filled in, or `auto`
    metric: str = "inner_product"  # vectors are normalised: inner product = cosine
    flat_below: int = 50_000
    ivf_above: int = 1_000_000
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    nlist: int | str = "auto"
    nprobe: int = 16
    recall_queries: int = 200
    build_threads: int = 1  # 1 keeps HNSW graphs byte-identical across runs
    seed: int = 42
    # Compressed IVF-PQ (pipeline/index/compressed.py, docs/scaling.md):
    pq_m: int = 32  # `{pq_m}` in the factory: PQ bytes per vector (a divisor of dim)
    refine: str = "none"  # mmap = re-rank refine_k_factor*k candidates from vectors.npy
    refine_k_factor: int = REFINE_K_FACTOR
    invlists: str = "memory"  # ondisk = FAISS OnDiskInvertedLists in index.ivfdata
    add_batch: int = 1_000_000  # compact builds: vectors per add (ondisk: per shard file)
    train_size: int = 262_144  # compact builds: vectors sampled to train the quantizers

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> IndexSettings:
        known = {k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg}
        if known.get("metric", "inner_product") != "inner_product":
            raise UserInputError("index.metric: only inner_product (cosine) is supported")
        for key, allowed in (("refine", REFINE_MODES), ("invlists", INVLISTS_MODES)):
            if known.get(key, allowed[0]) not in allowed:
                raise UserInputError(f"index.{key}: {known[key]!r}, expected one of {allowed}")
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def nlist_for(settings: IndexSettings, n: int) -> int:
    """IVF list count: configured, or 4*sqrt(n); capped so each list trains on >= 39 points
    (FAISS's minimum) of what k-means sees: the train_size sample for compact builds."""
    trained_on = min(n, settings.train_size) if compact(settings) else n
    cap = max(1, trained_on // 39)
    if settings.nlist != "auto":
        return max(1, min(int(settings.nlist), cap))
    return max(1, min(int(4 * math.sqrt(n)), cap))


def resolve_factory(settings: IndexSettings, n: int, dim: int | None = None) -> str:
    """The concrete factory string for a collection of n vectors."""
    factory = settings.factory
    if factory == "auto":
        if n < settings.flat_below:
            factory = "Flat"
        elif n < settings.ivf_above:
            factory = f"HNSW{settings.hnsw_m},Flat"
        else:
            factory = "IVF{nlist},Flat"
    if "{pq_m}" in factory:
        if dim is None:
            raise UserInputError(f"index.factory {factory!r}: {{pq_m}} needs the vector dim")
        factory = factory.replace("{pq_m}", str(pq_bytes(settings.pq_m, dim)))
    return factory.replace("{nlist}", str(nlist_for(settings, n)))


def build_faiss(
    vectors: np.ndarray, rids: np.ndarray, factory: str, settings: IndexSettings
) -> Any:
    """Train (if needed) and fill an IDMap2 index; rows must be in sorted rid order."""
    import faiss

    with faiss_threads(settings.build_threads):
        inner = trained_index(training_sample(vectors, settings), factory, settings)
        # IDMap2's reverse hash map costs more per vector than PQ codes: compact builds skip it.
        index = (faiss.IndexIDMap if compact(settings) else faiss.IndexIDMap2)(inner)
        if len(vectors):
            # Compact builds read a memory-mapped matrix a batch at a time; the others add
            # in one call, as before (HNSW orders insertions within a call by level).
            batch = settings.add_batch if compact(settings) else len(vectors)
            add_in_batches(index, vectors, rids, batch)
        apply_search_params(index, settings.ef_search, settings.nprobe)
        return index


def add_in_batches(index: Any, vectors: np.ndarray, rids: np.ndarray, batch: int) -> None:
    """Add `batch` rows at a time (one batch of a memory-mapped matrix in RAM), logging an ETA."""
    start, n = time.perf_counter(), len(vectors)
    for lo in range(0, n, max(1, batch)):
        hi = min(n, lo + max(1, batch))
        index.add_with_ids(np.ascontiguousarray(vectors[lo:hi]), rids[lo:hi])
        if hi < n:
            log_add_progress(hi, n, start)


@contextlib.contextmanager
def faiss_threads(threads: int) -> Iterator[None]:
    """FAISS's OpenMP threads set to `threads` (at least 1) for the block, then restored."""
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(1, threads))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def training_sample(vectors: np.ndarray, settings: IndexSettings) -> np.ndarray:
    """Compact builds train on a seeded sample of train_size rows (PQ k-means is the cost);
    other builds on every row, as before, so their indexes stay byte-identical."""
    if not compact(settings) or len(vectors) <= settings.train_size:
        return vectors
    rng = np.random.default_rng(settings.seed)
    return np.ascontiguousarray(
        vectors[np.sort(rng.choice(len(vectors), settings.train_size, False))]
    )


def trained_index(vectors: np.ndarray, factory: str, settings: IndexSettings) -> Any:
    """An empty FAISS index from `factory`, trained on `vectors` when it needs training."""
    import faiss

    try:
        inner = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise UserInputError(f"index.factory {factory!r}: {exc}".splitlines()[0]) from exc
    hnsw = _hnsw_of(inner)
    if hnsw is not None:
        hnsw.efConstruction = settings.ef_construction
    if not inner.is_trained and len(vectors):
        ivf = faiss.extract_index_ivf(inner) if "IVF" in factory else None
        if ivf is not None:
            ivf.cp.seed = settings.seed
        inner.train(vectors)
    return inner


def apply_search_params(index: Any, ef_search: int, nprobe: int) -> None:
    """Set the query-time beam (HNSW) or lists probed (IVF) on the index itself."""
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
    hnsw = _hnsw_of(inner)
    if hnsw is not None:
        hnsw.efSearch = ef_search
    if isinstance(inner, faiss.IndexRefine):
        inner.k_factor = REFINE_K_FACTOR
    with contextlib.suppress(RuntimeError):  # not an IVF index: nothing to set
        faiss.extract_index_ivf(inner).nprobe = nprobe


def _hnsw_of(index: Any) -> Any:
    import faiss

    index = faiss.downcast_index(index)
    return index.hnsw if hasattr(index, "hnsw") else None


def recall_at_k(
    index: Any, vectors: np.ndarray, rids: np.ndarray, settings: IndexSettings, k: int = 10
) -> dict[str, Any]:
    """recall@k of `index` against exact search, on a seeded sample of the indexed vectors."""
    n = len(vectors)
    if n == 0:
        return {"recall_at_10": None, "queries": 0}
    rng = np.random.default_rng(settings.seed)
    sample = np.sort(rng.choice(n, size=min(settings.recall_queries, n), replace=False))
    queries = np.ascontiguousarray(vectors[sample])
    k = min(k, n)
    import faiss

    _, exact = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    exact_ids = rids[exact]
    start = time.perf_counter()
    if settings.refine == "mmap":  # rank as the searcher does: PQ shortlist, exact re-rank
        inner = faiss.downcast_index(index.index)
        kf = settings.refine_k_factor
        rows = [refined_search(inner, vectors, q, k, kf)[1][0] for q in queries]
        found = np.where(np.asarray(rows) >= 0, rids[np.maximum(rows, 0)], -1)
    else:
        _, found = index.search(queries, k)
    seconds = time.perf_counter() - start
    hits = sum(len(set(found[i]) & set(exact_ids[i])) for i in range(len(sample)))
    return {
        "recall_at_10": hits / (len(sample) * k),
        "queries": len(sample),
        "query_ms_mean": 1000 * seconds / len(sample),
    }
