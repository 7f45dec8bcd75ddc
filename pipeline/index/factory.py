"""FAISS index from a factory string (conf/index/), `auto` chosen by collection size.

The `auto` rule: below `flat_below` records (50k) exact Flat search is fast enough and
exact; up to `ivf_above` (1M) HNSW gives sub-millisecond queries without training; beyond,
IVF with 4*sqrt(n) lists keeps build time and memory linear. Vector ids are the store's
rids (an IndexIDMap2 around the index), added in sorted rid order.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.errors import UserInputError

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

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> IndexSettings:
        known = {k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg}
        if known.get("metric", "inner_product") != "inner_product":
            raise UserInputError("index.metric: only inner_product (cosine) is supported")
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def nlist_for(settings: IndexSettings, n: int) -> int:
    """IVF list count: configured, or 4*sqrt(n) capped so each list trains on >= 39 points."""
    if settings.nlist != "auto":
        return max(1, min(int(settings.nlist), max(1, n // 39)))
    return max(1, min(int(4 * math.sqrt(n)), max(1, n // 39)))


def resolve_factory(settings: IndexSettings, n: int) -> str:
    """The concrete factory string for a collection of n vectors."""
    factory = settings.factory
    if factory == "auto":
        if n < settings.flat_below:
            factory = "Flat"
        elif n < settings.ivf_above:
            factory = f"HNSW{settings.hnsw_m},Flat"
        else:
            factory = "IVF{nlist},Flat"
    return factory.replace("{nlist}", str(nlist_for(settings, n)))


def build_faiss(
    vectors: np.ndarray, rids: np.ndarray, factory: str, settings: IndexSettings
) -> Any:
    """Train (if needed) and fill an IDMap2 index; rows must be in sorted rid order."""
    import faiss

    dim = vectors.shape[1]
    previous_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(1, settings.build_threads))
    try:
        try:
            inner = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
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
        index = faiss.IndexIDMap2(inner)
        if len(vectors):
            index.add_with_ids(vectors, rids)
        apply_search_params(index, settings.ef_search, settings.nprobe)
        return index
    finally:
        faiss.omp_set_num_threads(previous_threads)


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
    _, found = index.search(queries, k)
    seconds = time.perf_counter() - start
    hits = sum(len(set(found[i]) & set(exact_ids[i])) for i in range(len(sample)))
    return {
        "recall_at_10": hits / (len(sample) * k),
        "queries": len(sample),
        "query_ms_mean": 1000 * seconds / len(sample),
    }
