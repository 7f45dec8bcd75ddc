"""The index: approximate indexes against exact search, ids, manifest, verify and erasure."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest
from helpers.search import build_project, clustered, records_table

from pipeline.errors import NotFoundError
from pipeline.index import erase_rids
from pipeline.index.build import publish_index
from pipeline.index.factory import IndexSettings, build_faiss, resolve_factory
from pipeline.index.keyword import load_terms
from pipeline.index.manifest import read_manifest
from pipeline.index.verify import verify_index
from pipeline.search.api import Searcher, SearchSettings
from pipeline.store.db import connect
from pipeline.store.scope import Scope


def _recall(index: faiss.Index, exact: faiss.Index, queries: np.ndarray, k: int = 10) -> float:
    _, found = index.search(queries, k)
    _, truth = exact.search(queries, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth, strict=True)]))


@pytest.mark.parametrize(("factory", "floor"), [("HNSW32,Flat", 0.95), ("IVF{nlist},Flat", 0.9)])
def test_approximate_recall_against_flat(factory: str, floor: float) -> None:
    both = clustered(8_200, 32, seed=1)  # queries from the same clusters as the data
    vectors, queries = both[:8_000], both[8_000:]
    rids = np.arange(8_000, dtype=np.int64) * 7 + 3
    settings = IndexSettings(nprobe=16)
    exact = build_faiss(vectors, rids, "Flat", settings)
    approx = build_faiss(
        vectors, rids, resolve_factory(IndexSettings(factory=factory), 8_000), settings
    )
    recall = _recall(approx, exact, queries)
    assert recall >= floor, recall
    # Vector ids are the rids we gave, not positions.
    assert set(faiss.vector_to_array(approx.id_map)) == set(rids.tolist())


def test_auto_rule_by_size() -> None:
    auto = IndexSettings()
    assert resolve_factory(auto, 1_000) == "Flat"
    assert resolve_factory(auto, 60_000) == "HNSW32,Flat"
    assert resolve_factory(auto, 999_999) == "HNSW32,Flat"
    assert resolve_factory(auto, 1_000_000) == "IVF4000,Flat"
    assert resolve_factory(auto, 9_000_000) == "IVF12000,Flat"
    assert resolve_factory(IndexSettings(factory="IVF{nlist},Flat"), 390) == "IVF10,Flat"


def test_manifest_describes_the_build(tmp_path: Path) -> None:
    _table, _ = build_project(tmp_path, n=500)
    manifest = read_manifest(tmp_path / "index")
    assert manifest["records"] == 500
    assert manifest["factory"] == "Flat"
    assert manifest["recall_at_10"] == 1.0
    assert manifest["metric"] == "inner_product"
    assert manifest["encoder"] == {"model": "test", "dim": 32}
    assert len(manifest["data_hash"]) == 64
    assert manifest["build_params"]["factory"] == "Flat"
    assert manifest["keyword"]["docs"] == 500
    assert not list(tmp_path.glob(".index.*.tmp"))  # nothing half-written left behind


def test_verify_ok_then_catches_missing_and_extra(tmp_path: Path) -> None:
    table, _vectors = build_project(tmp_path, n=300)
    assert verify_index(tmp_path / "index", tmp_path / "store.duckdb")["ok"]

    # A kept record the index does not hold, and an index vector the store does not keep.
    extra_table = records_table(301, seed=9).slice(300, 1)
    con = connect(tmp_path / "store.duckdb", read_only=False)
    con.register("more", extra_table)
    con.execute("INSERT INTO records SELECT * FROM more")
    gone = table.column("rid")[0].as_py()
    con.execute("DELETE FROM records WHERE rid = ?", [gone])
    con.close()
    report = verify_index(tmp_path / "index", tmp_path / "store.duckdb")
    assert not report["ok"]
    assert report["missing"] == 1 and report["extra"] == 1
    assert report["extra_sample"] == [gone]
    assert any("no vector" in p for p in report["problems"])


def test_verify_catches_keyword_disagreement(tmp_path: Path) -> None:
    build_project(tmp_path, n=100)
    rids_path = tmp_path / "index" / "keyword" / "rids.npy"
    rids = np.load(rids_path)
    np.save(rids_path, rids[1:])
    report = verify_index(tmp_path / "index", tmp_path / "store.duckdb")
    assert not report["ok"]
    assert any("keyword index disagrees" in p for p in report["problems"])


@pytest.mark.parametrize("factory", ["Flat", "HNSW16,Flat", "IVF{nlist},Flat"])
def test_erase_rids_republishes_without_them(tmp_path: Path, factory: str) -> None:
    table, vectors = build_project(tmp_path, n=1000, factory=factory)
    before = read_manifest(tmp_path / "index")
    searcher = Searcher(tmp_path / "index", tmp_path / "store.duckdb", SearchSettings(), None)
    victims = {table.column("rid")[i].as_py() for i in (0, 5, 10)}
    # The victim is its own nearest neighbour before erasure.
    hit = searcher.search_vector(vectors[5], k=1, scope=Scope.all())[0]
    assert hit.rid in victims

    assert erase_rids(tmp_path / "index", victims | {12345}) == 3
    after = read_manifest(tmp_path / "index")
    assert after["records"] == 997 and after["erased"] == 3
    assert after["data_hash"] != before["data_hash"]
    assert searcher.reload_if_changed()
    found = {r.rid for r in searcher.search_vector(vectors[5], k=50, scope=Scope.all())}
    assert not found & victims
    kw = {
        r.rid
        for r in searcher.search(
            table.column("prompt")[5].as_py(), k=50, mode="keyword", scope=Scope.all()
        )
    }
    assert not kw & victims
    assert set(load_terms(tmp_path / "index" / "keyword").rids.tolist()).isdisjoint(victims)
    assert erase_rids(tmp_path / "index", victims) == 0  # idempotent


def test_no_index_yet_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no index built yet"):
        read_manifest(tmp_path / "index")


def test_same_input_same_index_bytes(tmp_path: Path) -> None:
    vectors = clustered(3000, 16, seed=3)
    rids = np.arange(3000, dtype=np.int64)
    texts = ["a b"] * 3000
    for name in ("one", "two"):
        publish_index(
            tmp_path / name, rids, vectors, texts, IndexSettings(factory="HNSW16,Flat"), {}
        )
    one, two = (json.loads((tmp_path / n / "manifest.json").read_text()) for n in ("one", "two"))
    assert one["data_hash"] == two["data_hash"]
    assert (tmp_path / "one" / "index.faiss").read_bytes() == (
        tmp_path / "two" / "index.faiss"
    ).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["auto", "flat", "hnsw", "ivf", "ivfpq"])
def test_every_index_config_builds_and_searches(tmp_path: Path, name: str) -> None:
    from pipeline.config import compose

    settings = IndexSettings.from_cfg(compose([f"index={name}"]).index)
    settings = IndexSettings(**{**settings.to_dict(), "recall_queries": 50})
    both = clustered(6_050, 48, seed=4)
    vectors, queries = both[:6_000], both[6_000:]
    table = records_table(6_000, seed=4)
    rids = np.asarray(table.column("rid").to_pylist(), dtype=np.int64)
    from helpers.store import write_records_store

    write_records_store(tmp_path / "store.duckdb", table)
    manifest = publish_index(tmp_path / "index", rids, vectors, ["t"] * 6_000, settings, {})
    assert manifest["recall_at_10"] >= 0.9, manifest
    searcher = Searcher(
        tmp_path / "index", tmp_path / "store.duckdb", SearchSettings(exact_below=100), None
    )
    for q in queries[:5]:
        assert len(searcher.search_ids(q, 10, scope=Scope.all())[0]) == 10
        found, _ = searcher.search_ids(
            q, 10, filters=["origin=real"], scope=Scope.all()
        )  # 50%: FAISS pre-filter
        assert len(found) == 10
