"""index=ivfpq / ivfpq_disk: PQ codes resident, floats memory-mapped, on-disk lists; real FAISS."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers.search import clustered, records_table
from helpers.store import write_records_store

from pipeline.config import compose
from pipeline.index.build import publish_index
from pipeline.index.compressed import IVFDATA_FILE, pq_bytes
from pipeline.index.factory import (
    IndexSettings,
    build_faiss,
    nlist_for,
    recall_at_k,
    resolve_factory,
)
from pipeline.index.verify import verify_index
from pipeline.search.api import Searcher, SearchSettings
from pipeline.search.state import IndexState
from pipeline.service.erasure import erase_user
from pipeline.service.settings import ServicePaths
from pipeline.store.scope import Scope

DIM = 96
N = 4_000


def _settings(name: str, **over: object) -> IndexSettings:
    cfg = IndexSettings.from_cfg(compose([f"index={name}"]).index)
    # nlist fixed so the per-vector figure is not blurred by a size-dependent quantizer.
    return IndexSettings(**{**cfg.to_dict(), "recall_queries": 50, "nlist": 32, **over})


def _project(root: Path, name: str, n: int = N, **over: object) -> tuple[np.ndarray, np.ndarray]:
    """A store and a published index laid out as the service expects (ServicePaths)."""
    paths = ServicePaths().under(root)
    paths.store.parent.mkdir(parents=True, exist_ok=True)
    table = records_table(n, seed=5)
    write_records_store(paths.store, table)
    pq.write_table(table, paths.records)
    vectors = clustered(n, DIM, seed=5)
    rids = np.asarray(table.column("rid").to_pylist(), dtype=np.int64)
    publish_index(paths.index_dir, rids, vectors, ["t"] * n, _settings(name, **over), {})
    return rids, vectors


def _exact(vectors: np.ndarray, rids: np.ndarray, allowed: np.ndarray, q: np.ndarray) -> set:
    scores = vectors[allowed] @ q
    return set(rids[allowed[np.argsort(-scores, kind="stable")[:10]]].tolist())


FILTERS = {  # rows in rid order = table order (records_table's rids are sorted)
    "all": lambda n: np.arange(n),
    "origin=real": lambda n: np.flatnonzero(np.arange(n) % 2 == 0),
    "label=support": lambda n: np.flatnonzero(np.arange(n) % 10 == 0),
}


def _recall(searcher: Searcher, vectors: np.ndarray, rids: np.ndarray, live: np.ndarray) -> dict:
    """recall@10 per filter over held-out queries; every search must return 10."""
    queries = clustered(N + 20, DIM, seed=5)[N:]  # same clusters, not indexed
    hits = dict.fromkeys(FILTERS, 0)
    for q in queries:
        for name, rows_of in FILTERS.items():
            allowed = np.intersect1d(rows_of(N), live)
            filters = [] if name == "all" else [name]
            found, _ = searcher.search_ids(q, 10, filters=filters, scope=Scope.all())
            assert len(found) == 10, name  # a pre-filter still returns k
            assert set(found.tolist()) <= set(rids[allowed].tolist()), name
            hits[name] += len(_exact(vectors, rids, allowed, q) & set(found.tolist()))
    return {name: h / (10 * len(queries)) for name, h in hits.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ivfpq", "ivfpq_disk"])
def test_build_search_filter_erase_verify(tmp_path: Path, name: str) -> None:
    # ivfpq_disk: 3 shards merged with merge_ondisk.
    rids, vectors = _project(tmp_path, name, add_batch=1_500)
    paths = ServicePaths().under(tmp_path)
    state = IndexState.load(paths.index_dir)  # published by rename: the build path moved
    # The float vectors are a read-only map of vectors.npy, and FAISS holds only PQ codes.
    assert isinstance(state.vectors, np.memmap) and state.vectors.mode == "r"
    assert isinstance(faiss.downcast_index(state.inner), faiss.IndexIVFPQ)
    assert state.refine_k == _settings(name).refine_k_factor
    assert (paths.index_dir / "index.faiss").stat().st_size < N * DIM  # floats: 4*DIM each
    invlists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(state.inner).invlists)
    ondisk = isinstance(invlists, faiss.OnDiskInvertedLists)
    assert ondisk == (name == "ivfpq_disk")
    assert (paths.index_dir / IVFDATA_FILE).exists() == ondisk

    searcher = Searcher(paths.index_dir, paths.store, SearchSettings(), None)
    recall = _recall(searcher, vectors, rids, np.arange(N))
    assert min(recall.values()) >= 0.9, recall

    # `pipeline erase`'s own path: the store, records.parquet and this index, under the lock.
    user_rows = np.flatnonzero(np.arange(N) % 7 == 3)  # records_table: user-{i % 7}
    counts = erase_user(paths, "user-3", "test")
    assert counts["index_removed"] == len(user_rows), counts
    report = verify_index(paths.index_dir, paths.store)
    assert report["ok"], report["problems"]
    assert report["vectors"] == N - len(user_rows)
    manifest = json.loads((paths.index_dir / "manifest.json").read_text())
    assert manifest["build_params"]["invlists"] == ("ondisk" if ondisk else "memory")
    # At 3.4k vectors the quantizers add ~32 B each; the marginal figure is tested below.
    assert manifest["memory"]["resident_bytes_per_vector"] < 4 * DIM  # no float copy

    live = np.setdiff1d(np.arange(N), user_rows)
    after = Searcher(paths.index_dir, paths.store, SearchSettings(), None)
    recall = _recall(after, vectors, rids, live)  # also: no erased rid is ever returned
    assert min(recall.values()) >= 0.9, recall


@pytest.mark.slow
def test_manifest_records_resident_bytes_per_vector(tmp_path: Path) -> None:
    """Marginal resident bytes per vector: codes + list id + IDMap id + rids.npy = pq_m + 24."""
    figures = {}
    for n in (2_000, 4_000):
        _project(tmp_path / str(n), "ivfpq", n=n)
        index_dir = ServicePaths().under(tmp_path / str(n)).index_dir
        memory = json.loads((index_dir / "manifest.json").read_text())["memory"]
        figures[n] = memory["resident_bytes_per_vector"] * n
        assert memory["refine"] == "mmap" and memory["mapped_bytes_per_vector"] >= 4 * DIM
    marginal = (figures[4_000] - figures[2_000]) / 2_000
    assert marginal == pytest.approx(pq_bytes(32, DIM) + 24, abs=1.0)
    assert marginal <= 64


@pytest.mark.slow
def test_ondisk_lists_rank_as_the_in_memory_lists(tmp_path: Path) -> None:
    # 3 shards merged with merge_ondisk; both train on every vector with the same PQ size
    # and re-rank depth (the disk config's defaults differ), so codes are identical.
    same = {"pq_m": 32, "refine_k_factor": 16}
    _project(tmp_path / "disk", "ivfpq_disk", add_batch=1_500, train_size=N, **same)
    _project(tmp_path / "mem", "ivfpq", **same)
    disk = IndexState.load(ServicePaths().under(tmp_path / "disk").index_dir)
    mem = IndexState.load(ServicePaths().under(tmp_path / "mem").index_dir)
    assert disk.inner.ntotal == mem.inner.ntotal == N
    for q in clustered(N + 5, DIM, seed=5)[N:]:
        a, _, _ = disk.vector_top(q, 10, None, 0, 0)
        b, _, _ = mem.vector_top(q, 10, None, 0, 0)
        assert a.tolist() == b.tolist()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ivfpq", "ivfpq_disk"])
def test_default_refine_depth_meets_recall_where_a_shallow_one_does_not(name: str) -> None:
    """The configs' defaults (nlist, nprobe, pq_m, refine_k_factor) at recall@10 >= 0.9.

    384-d, 20 clusters of ~1,000 vectors: inside a cluster the neighbours are nearly tied
    and PQ cannot order them, so recall depends on how many PQ candidates are re-ranked
    (docs/scaling.md). The old depth (16 per result) must fail here, or the check is empty.
    """
    n, dim = 20_000, 384
    vectors = clustered(n, dim, seed=3, clusters=20)
    rids = np.arange(n, dtype=np.int64) * 3 + 1
    base = IndexSettings.from_cfg(compose([f"index={name}"]).index)
    recall = {}
    for depth in (base.refine_k_factor, 16):
        # In-memory lists: the ranking is the same as on disk (tested above), built faster.
        settings = IndexSettings(
            **{**base.to_dict(), "refine_k_factor": depth, "invlists": "memory"}
        )
        factory = resolve_factory(settings, n, dim)
        index = build_faiss(vectors, rids, factory, settings)
        recall[depth] = recall_at_k(index, vectors, rids, settings)["recall_at_10"]
    assert recall[base.refine_k_factor] >= 0.9, recall
    assert recall[16] < 0.9, recall


def test_bad_refine_or_invlists_is_a_config_error() -> None:
    from pipeline.errors import UserInputError

    with pytest.raises(UserInputError, match=r"index\.refine"):
        IndexSettings.from_cfg({"refine": "ram"})
    with pytest.raises(UserInputError, match=r"index\.invlists"):
        IndexSettings.from_cfg({"invlists": "tape"})
    assert pq_bytes(32, 384) == 32 and pq_bytes(32, 48) == 24 and pq_bytes(32, 7) == 7


def test_nlist_is_capped_by_what_k_means_trains_on() -> None:
    """FAISS wants >= 39 training points per list: compact builds train on train_size."""
    compact_cfg = IndexSettings.from_cfg(compose(["index=ivfpq_disk"]).index)
    assert compact_cfg.nlist == "auto" and compact_cfg.train_size == 262_144
    assert nlist_for(compact_cfg, 10_000_000) == 262_144 // 39  # 4*sqrt(n) would be 12,649
    assert nlist_for(compact_cfg, 1_000_000) == 4_000  # below the cap: 4*sqrt(n)
    configured = IndexSettings(**{**compact_cfg.to_dict(), "nlist": 100_000})
    assert nlist_for(configured, 10_000_000) == 262_144 // 39
    full = IndexSettings(**{**compact_cfg.to_dict(), "refine": "none", "invlists": "memory"})
    assert nlist_for(full, 10_000_000) == 12_649  # trains on every vector


@pytest.mark.parametrize(("allowed", "how"), [(20, "exact-subset"), (2_000, "index-prefilter")])
def test_ivf_filter_takes_the_cheaper_path_and_stays_exact(
    tmp_path: Path, allowed: int, how: str
) -> None:
    """Above exact_below, an IVF filter scores the allowed rows exactly when that costs less
    than the widened list scan (which checks every probed code), else searches the lists."""
    n, dim = 4_000, 32
    vectors = clustered(n, dim, seed=11, clusters=8)
    rids = np.arange(n, dtype=np.int64) * 2 + 5
    settings = IndexSettings(
        **{**_settings("ivfpq").to_dict(), "nlist": 64, "nprobe": 16, "pq_m": 8}
    )
    publish_index(tmp_path / "index", rids, vectors, ["x"] * n, settings, {})
    state = IndexState.load(tmp_path / "index")
    rows = np.sort(np.random.default_rng(3).choice(n, allowed, replace=False))
    for q in clustered(n + 3, dim, seed=11, clusters=8)[n:]:
        found, _, strategy = state.vector_top(q, 10, rows, 0, 0)
        assert strategy == how
        truth = rows[np.argsort(-(vectors[rows] @ q))[:10]]
        assert len(set(found.tolist()) & set(truth.tolist())) >= 9


def test_batched_add_logs_progress_with_an_eta(caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.index.factory import add_in_batches

    index = faiss.IndexIDMap(faiss.IndexFlatIP(8))
    vectors = np.random.default_rng(0).random((250, 8), dtype=np.float32)
    with caplog.at_level("INFO", logger="pipeline.index"):
        add_in_batches(index, vectors, np.arange(250, dtype=np.int64), 100)
    assert index.ntotal == 250
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("index add")]
    assert len(lines) == 2 and lines[0].startswith("index add: 100/250 vectors")
    assert all(" s, ETA " in line for line in lines)


def _resident(path: Path, rows: np.ndarray, row_bytes: int, offset: int) -> np.ndarray:
    """Whether each row's first page is in the page cache (mincore on a fresh mapping)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = ctypes.create_string_buffer(pages)
    with path.open("rb") as f, mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) as mm:
        view = np.frombuffer(mm, dtype=np.uint8)  # its address is the mapping's
        assert libc.mincore(view.ctypes.data, size, vec) == 0, ctypes.get_errno()
        del view  # the mapping closes only once no buffer points into it
    resident = np.frombuffer(vec.raw, dtype=np.uint8) & 1
    return resident[(offset + rows * row_bytes) // mmap.PAGESIZE].astype(bool)


def test_read_ahead_brings_the_requested_rows_into_the_page_cache(tmp_path: Path) -> None:
    """ReadAhead asks the kernel for the rows a query will gather: after it, those rows are
    in the page cache and rows it did not name are not (a real file, real fadvise)."""
    import os
    import time

    from pipeline.index.compressed import ReadAhead

    path = tmp_path / "vectors.npy"
    np.save(path, np.random.default_rng(0).random((20_000, 384), dtype=np.float32))
    vectors = np.load(path, mmap_mode="r")
    ahead = ReadAhead.of(path, vectors)
    assert ahead is not None and ahead.row_bytes == 384 * 4 and ahead.offset == vectors.offset
    assert ReadAhead.of(path, np.asarray(vectors)) is None  # in memory: nothing to read ahead
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)  # dirty pages cannot be dropped
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    every = np.arange(len(vectors))
    if _resident(path, every, ahead.row_bytes, ahead.offset).mean() > 0.5:
        pytest.skip("this filesystem keeps the file in memory (tmpfs?): nothing to evict")
    wanted = np.array([9_000, 3, 4, 19_999, 500])  # 3 and 4 share a request; any order
    ahead(wanted)
    deadline = time.monotonic() + 10
    while not _resident(path, wanted, ahead.row_bytes, ahead.offset).all():
        assert time.monotonic() < deadline, "the requested rows never reached the page cache"
        time.sleep(0.01)
    far = np.arange(2_000, 8_000, 97)  # no request within ~1 MB of these
    assert _resident(path, far, ahead.row_bytes, ahead.offset).mean() < 0.5
    ahead(np.zeros(0, dtype=np.int64))  # nothing asked: no request, no error
    ahead.close()


def test_read_ahead_follows_the_setting_and_never_changes_results(tmp_path: Path) -> None:
    """search.read_ahead: auto turns it on for indexes that re-rank from vectors.npy (ivfpq)
    and off where FAISS holds the floats (flat); on or off, a search returns the same."""
    from pipeline.errors import UserInputError

    _project(tmp_path / "pq", "ivfpq")
    _project(tmp_path / "flat", "flat")
    pq_dir = ServicePaths().under(tmp_path / "pq").index_dir
    flat_dir = ServicePaths().under(tmp_path / "flat").index_dir
    assert IndexState.load(pq_dir).read_ahead is not None
    assert IndexState.load(flat_dir).read_ahead is None
    assert IndexState.load(flat_dir, read_ahead=True).read_ahead is not None
    on, off = IndexState.load(pq_dir, read_ahead=True), IndexState.load(pq_dir, read_ahead=False)
    assert off.read_ahead is None
    rows = np.flatnonzero(np.arange(N) % 10 == 0)  # 400 rows: the exact subset path
    for q in clustered(N + 5, DIM, seed=5)[N:]:
        for allowed, exact_below in ((None, 0), (rows, 5_000)):
            a, sa, how_a = on.vector_top(q, 10, allowed, exact_below, 0)
            b, sb, how_b = off.vector_top(q, 10, allowed, exact_below, 0)
            assert how_a == how_b and a.tolist() == b.tolist() and np.array_equal(sa, sb)
    with pytest.raises(UserInputError, match=r"search\.read_ahead"):
        SearchSettings(read_ahead="sometimes")
