"""IVF-PQ that really compresses: PQ codes in RAM or on disk, an exact re-rank from vectors.npy.

`index=ivfpq` keeps only PQ codes (`pq_m` bytes), their ids and the rid arrays resident. The
float vectors stay in `vectors.npy`, memory-mapped: the re-rank reads the `refine_k_factor`*k
candidates' rows, not the matrix. `index=ivfpq_disk` also leaves the inverted lists on disk:
FAISS `OnDiskInvertedLists` in `index.ivfdata`, built shard by shard with `merge_ondisk`, so
neither building nor searching needs the codes in RAM. See docs/scaling.md, "An index for
100M vectors".
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.index.manifest import FAISS_FILE, RIDS_FILE, VECTORS_FILE

log = logging.getLogger(__name__)

IVFDATA_FILE = "index.ivfdata"  # OnDiskInvertedLists of index=ivfpq_disk
REFINE_MODES = ("none", "mmap")
INVLISTS_MODES = ("memory", "ondisk")
# IndexIDMap2's reverse hash map costs about this much per vector (std::unordered_map node
# and bucket), more than the PQ codes: compressed indexes use the plain IndexIDMap.
IDMAP2_REVERSE_BYTES = 40


def compact(settings: Any) -> bool:
    """Whether this build keeps memory per vector down (IndexIDMap, no float copy in FAISS)."""
    return settings.refine != "none" or settings.invlists != "memory"


def pq_bytes(requested: int, dim: int) -> int:
    """The largest PQ sub-quantizer count <= requested that divides dim (FAISS needs both)."""
    m = max(1, min(int(requested), dim))
    while dim % m:
        m -= 1
    return m


def read_faiss(index_dir: Path, manifest: dict[str, Any]) -> Any:
    """Read index.faiss; on-disk inverted lists are found beside it, wherever it was renamed."""
    import faiss

    flags = 0
    if manifest.get("build_params", {}).get("invlists") == "ondisk":
        # The ivfdata path inside index.faiss is the temporary build directory's.
        flags = faiss.IO_FLAG_ONDISK_SAME_DIR
    return faiss.read_index(str(index_dir / FAISS_FILE), flags)


def write_faiss(
    directory: Path, vectors: np.ndarray, rids: np.ndarray, factory: str, settings: Any
) -> Any:
    """Build the FAISS index into `directory` (not yet published) and return it, searchable."""
    import faiss

    from pipeline.index.factory import build_faiss

    if settings.invlists != "ondisk" or not len(vectors):
        index = build_faiss(vectors, rids, factory, settings)
        faiss.write_index(index, str(directory / FAISS_FILE))
        return index
    _build_ondisk(directory, vectors, rids, factory, settings)
    return read_faiss(directory, {"build_params": {"invlists": "ondisk"}})


def _build_ondisk(
    directory: Path, vectors: np.ndarray, rids: np.ndarray, factory: str, settings: Any
) -> None:
    """Train once, add `add_batch` vectors per shard file, merge the shards into index.ivfdata."""
    from pipeline.index.factory import faiss_threads

    shards_dir = directory / "shards.tmp"
    shards_dir.mkdir()
    try:
        with faiss_threads(settings.build_threads):
            _write_shards(directory, shards_dir, vectors, rids, factory, settings)
    finally:
        shutil.rmtree(shards_dir, ignore_errors=True)


def log_add_progress(done: int, total: int, start: float, what: str = "") -> None:
    """One progress line of an index build's add: vectors done, seconds, an ETA."""
    elapsed = time.perf_counter() - start
    eta = elapsed * (total - done) / max(done, 1)
    log.info("index add: %s%d/%d vectors, %.0f s, ETA %.0f s", what, done, total, elapsed, eta)


def _write_shards(
    directory: Path,
    shards_dir: Path,
    vectors: np.ndarray,
    rids: np.ndarray,
    factory: str,
    settings: Any,
) -> None:
    """The trained quantizers, one shard file per add_batch, merged into index.ivfdata."""
    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    from pipeline.index.factory import apply_search_params, trained_index, training_sample

    trained = trained_index(training_sample(vectors, settings), factory, settings)
    trained_file = shards_dir / "trained.faiss"
    faiss.write_index(trained, str(trained_file))
    shards, start = [], time.perf_counter()
    for number, lo in enumerate(range(0, len(vectors), settings.add_batch)):
        shard = faiss.read_index(str(trained_file))
        hi = min(len(vectors), lo + settings.add_batch)
        # Inner ids are rows (the searcher's order); the IDMap maps them to rids.
        shard.add_with_ids(np.ascontiguousarray(vectors[lo:hi]), np.arange(lo, hi, dtype=np.int64))
        shards.append(str(shards_dir / f"shard{number:05d}.faiss"))
        faiss.write_index(shard, shards[-1])
        del shard  # one shard's codes in RAM at a time
        log_add_progress(hi, len(vectors), start, f"shard {number}, ")
    inner = faiss.read_index(str(trained_file))
    index = faiss.IndexIDMap(inner)  # wrapped while empty, as FAISS requires
    merge_ondisk(inner, shards, str(directory / IVFDATA_FILE))
    faiss.copy_array_to_vector(np.asarray(rids, dtype=np.int64), index.id_map)
    index.ntotal = inner.ntotal
    apply_search_params(index, settings.ef_search, settings.nprobe)
    faiss.write_index(index, str(directory / FAISS_FILE))


def inner_products(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """rows @ query as float32, in this thread: no BLAS thread pool for one query's scores.

    OpenBLAS splits a matrix-vector product of a few thousand rows across its threads; on
    a loaded machine those threads wait for a core: 2,000 rows took 7.7 ms at the median
    instead of 0.9 ms (benchmarks/RESULTS.md, "Exact scores of one query"). Queries run
    side by side in the service already, so each one computes its scores alone (einsum
    does not call BLAS).
    """
    return np.einsum("ij,j->i", rows, query, dtype=np.float32)


class ReadAhead:
    """Asks the kernel to read, all at once, the rows of a memory-mapped .npy that a query is
    about to gather: one `posix_fadvise(WILLNEED)` per run of nearby rows.

    Gathering from a cold file takes one page fault per row, and each fault waits for its
    own disk read before the next starts. Requested together, the reads are in flight at
    once. The page cache costs ~0.75 us per request here. docs/scaling.md, "Cold reads",
    has the measured figures.
    """

    GAP = 8_192  # rows closer than this many bytes share one request

    def __init__(self, path: str | os.PathLike, offset: int, row_bytes: int) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - held for the state's lifetime
        self.offset = int(offset)
        self.row_bytes = int(row_bytes)

    @classmethod
    def of(cls, path: str | os.PathLike, vectors: np.ndarray) -> ReadAhead | None:
        """For a memory-mapped .npy opened from `path`; None where the OS has no fadvise or
        the array is in memory."""
        if not hasattr(os, "posix_fadvise") or not isinstance(vectors, np.memmap):
            return None
        return cls(path, vectors.offset, vectors.strides[0])

    def __call__(self, rows: np.ndarray) -> None:
        """Request these rows from disk; returns without waiting. Rows in ascending order
        share requests; any order is correct."""
        if not len(rows):
            return
        starts = self.offset + np.asarray(rows, dtype=np.int64) * self.row_bytes
        gaps = np.diff(starts)
        breaks = np.flatnonzero((gaps > self.GAP) | (gaps < 0)) + 1
        first = starts[np.concatenate(([0], breaks))]
        last = starts[np.concatenate((breaks - 1, [len(starts) - 1]))] + self.row_bytes
        fd = self._file.fileno()
        for lo, hi in zip(first.tolist(), last.tolist(), strict=True):
            os.posix_fadvise(fd, lo, hi - lo, os.POSIX_FADV_WILLNEED)

    def close(self) -> None:
        self._file.close()


def gathered_scores(
    vectors: np.ndarray,
    rows: np.ndarray,
    query: np.ndarray,
    chunk: int = 2_048,
    read_ahead: ReadAhead | None = None,
) -> np.ndarray:
    """Inner products of `vectors[rows]` (memory-mapped) with the query, gathered in chunks
    that stay in cache: 2,048 rows of 384-d are 3 MB. Against one gather of every row it is
    1.7-2.2x faster from 10k rows up (benchmarks/index_filter_paths.py). With `read_ahead`,
    every row is requested from disk before the first chunk is gathered."""
    if read_ahead is not None:
        read_ahead(rows)
    out = np.empty(len(rows), dtype=np.float32)
    for lo in range(0, len(rows), chunk):
        out[lo : lo + chunk] = inner_products(vectors[rows[lo : lo + chunk]], query)
    return out


def refined_search(
    inner: Any,
    vectors: np.ndarray,
    query: np.ndarray,
    n: int,
    k_factor: int,
    params: Any = None,
    read_ahead: ReadAhead | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top n rows: k_factor*n PQ candidates re-scored exactly from (memory-mapped) vectors.

    Returns FAISS-shaped (1, n) scores and rows, -1 padded, for the searcher's callers.
    """
    query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
    _, found = inner.search(query, max(n, n * k_factor), params=params)
    candidates = np.sort(found[0][found[0] >= 0])  # sorted: sequential-ish reads of the mmap
    scores = gathered_scores(vectors, candidates, query[0], read_ahead=read_ahead)
    top = np.argsort(-scores, kind="stable")[:n]
    rows = np.full((1, n), -1, dtype=np.int64)
    out = np.full((1, n), -np.inf, dtype=np.float32)
    rows[0, : len(top)], out[0, : len(top)] = candidates[top], scores[top]
    return out, rows


def memory_footprint(directory: Path, n: int, settings: Any) -> dict[str, Any]:
    """Bytes per vector kept resident by a loaded index, and on disk, from the files' sizes.

    Resident: index.faiss (loaded whole; with on-disk lists only quantizers and the id map),
    rids.npy, and IndexIDMap2's reverse map when used. vectors.npy and index.ivfdata are
    memory-mapped: the page cache holds what queries touch, and the kernel may drop it.
    """
    size = {name: _size(directory / name) for name in (FAISS_FILE, RIDS_FILE, VECTORS_FILE)}
    ivfdata = _size(directory / IVFDATA_FILE)
    reverse_map = 0 if compact(settings) else IDMAP2_REVERSE_BYTES * n
    resident = size[FAISS_FILE] + size[RIDS_FILE] + reverse_map
    per = max(n, 1)
    return {
        "resident_bytes_per_vector": round(resident / per, 1),
        "disk_bytes_per_vector": round((sum(size.values()) + ivfdata) / per, 1),
        "mapped_bytes_per_vector": round((size[VECTORS_FILE] + ivfdata) / per, 1),
        "refine": settings.refine,
        "invlists": settings.invlists,
    }


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
