"""Searcher: pre-filters that still return k, keyword and hybrid, reloads, CLI errors."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from test_search_helpers import build_project

import pipeline
from pipeline.cli import main
from pipeline.config import compose, to_yaml
from pipeline.errors import NotFoundError, UserInputError
from pipeline.index.build import publish_index
from pipeline.index.factory import IndexSettings
from pipeline.search.api import Searcher, SearchSettings
from pipeline.search.filters import Condition
from pipeline.search.hybrid import reciprocal_rank_fusion


@pytest.fixture(scope="module")
def hnsw_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    root = tmp_path_factory.mktemp("hnsw")
    _, vectors = build_project(root, n=10_000, dim=32, factory="HNSW16,Flat")
    return root, vectors


@pytest.mark.parametrize("exact_below", [0, 100_000], ids=["faiss-selector", "exact-subset"])
@pytest.mark.parametrize(
    ("filters", "allowed"),
    [
        (["label=rare"], 10),  # 0.1% of the records
        (["label=support", "tags=billing"], 500),  # 5%
    ],
)
def test_prefilter_returns_k_exact_neighbours(
    hnsw_project: tuple[Path, np.ndarray], exact_below: int, filters: list[str], allowed: int
) -> None:
    root, vectors = hnsw_project
    searcher = Searcher(
        root / "index", root / "store.duckdb", SearchSettings(exact_below=exact_below), None
    )
    query = vectors[123]
    hits = searcher.search_vector(query, k=10, filters=filters)
    assert len(hits) == 10
    assert all(h.label in ("rare", "support") for h in hits)
    # Compare with brute force over the allowed records only.
    state = searcher._state
    rows = searcher._allowed_rows(state, tuple(pipeline.search.filters.as_conditions(filters)))
    assert len(rows) == allowed
    truth = set(state.rids[rows[np.argsort(-(vectors_of(state, rows) @ query))[:10]]].tolist())
    assert len({h.rid for h in hits} & truth) >= 9


def vectors_of(state, rows):
    return np.asarray(state.vectors[rows])


def test_scope_is_anded_with_filters(hnsw_project: tuple[Path, np.ndarray]) -> None:
    root, vectors = hnsw_project
    searcher = Searcher(root / "index", root / "store.duckdb", SearchSettings(), None)
    scope = (Condition("user_id", "in", ("user-1", "user-2")),)
    hits = searcher.search_vector(vectors[0], k=20, filters=["quality>=3"], scope=scope)
    assert len(hits) == 20
    assert all(h.user_id in ("user-1", "user-2") and h.quality >= 3 for h in hits)
    assert searcher.search_vector(vectors[0], k=5, filters=["label=nobody"]) == []


@pytest.fixture
def text_project(tmp_path: Path) -> Path:
    prompts = [
        "how do I get a refund for a damaged parcel",
        "my parcel arrived damaged and wet",
        "reset my password please",
        "the printer driver crashes the kernel",
        "bake bread in a hot oven",
        "'; DROP TABLE records; --",
    ] * 5
    build_project(tmp_path, n=len(prompts), dim=8, prompts=prompts)
    return tmp_path


def test_keyword_bm25_ranks_term_matches(text_project: Path) -> None:
    searcher = Searcher(
        text_project / "index", text_project / "store.duckdb", SearchSettings(), None
    )
    hits = searcher.search("damaged parcel refund", k=10, mode="keyword")
    prompts = [h.prompt for h in hits]
    assert prompts[:5] == ["how do I get a refund for a damaged parcel"] * 5
    assert prompts[5:] == ["my parcel arrived damaged and wet"] * 5
    assert hits[0].scores["keyword"] > hits[-1].scores["keyword"] > 0
    assert searcher.search("zebra", k=3, mode="keyword") == []
    filtered = searcher.search("parcel", k=10, mode="keyword", filters=["origin=real"])
    assert filtered and all(h.origin == "real" for h in filtered)
    with pytest.raises(UserInputError, match="query encoder"):
        searcher.search("parcel", mode="vector")


def test_hybrid_fuses_both_rankings(text_project: Path) -> None:
    index_dir, store = text_project / "index", text_project / "store.duckdb"
    state_vectors = np.load(index_dir / "vectors.npy")
    # The "encoder" maps every query to the vector of the oven record (row order is rid order).
    oven_row = 4
    searcher = Searcher(index_dir, store, SearchSettings(), lambda text: state_vectors[oven_row])
    hits = searcher.search("password", k=5, mode="hybrid", with_session=True)
    prompts = [h.prompt for h in hits]
    assert "reset my password please" in prompts  # from the keyword ranking
    assert any(h.scores["vector"] is not None and h.scores["keyword"] is not None for h in hits)
    assert hits[0].score == hits[0].scores["fused"] > 0
    assert hits[0].session is not None
    assert all(t["session_id"] == hits[0].session_id for t in hits[0].session)
    assert hits[0].to_dict()["created_at"].startswith("2024-")


def test_reciprocal_rank_fusion_prefers_agreement() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60)
    assert [item for item, _ in fused] == [1, 3, 2, 4]


def test_searcher_answers_during_rebuild_and_reloads(tmp_path: Path) -> None:
    table, vectors = build_project(tmp_path, n=3000, dim=16, factory="HNSW16,Flat")
    searcher = Searcher(tmp_path / "index", tmp_path / "store.duckdb", SearchSettings(), None)
    errors: list[BaseException] = []
    answered = [0]
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                assert len(searcher.search_vector(vectors[7], k=5)) == 5
                searcher.reload_if_changed()
                answered[0] += 1
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    rids = np.asarray(table.column("rid").to_pylist(), dtype=np.int64)
    for _ in range(3):  # republish the same records under the searchers' feet
        publish_index(
            tmp_path / "index", rids, vectors, ["x"] * 3000, IndexSettings(factory="Flat"), {}
        )
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert answered[0] > 0
    searcher.reload_if_changed()
    assert searcher.manifest["factory"] == "Flat"


@pytest.fixture
def cli_project(text_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = compose(
        ["paths.store=store.duckdb", "paths.index_dir=index", "embed.model=test", "embed.dim=8"]
    )
    (text_project / "params.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    return text_project


def test_cli_search_keyword(cli_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["search", "refund parcel", "--mode", "keyword", "-k", "2", "--root", str(cli_project)]
    )
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err
    assert "refund for a damaged parcel" in out and "keyword" in out
    code = main(
        [
            "search",
            "DROP TABLE",
            "--mode",
            "keyword",
            "--json",
            "--filter",
            "label=' OR 1=1 --",
            "--root",
            str(cli_project),
        ]
    )
    assert code == 0 and capsys.readouterr().out.strip() == "[]"


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["search", "  "], 2, "empty query"),
        (["search", "x", "--filter", "colour=red"], 2, "unknown field 'colour'"),
        (["search", "x", "--filter", "quality>=lots"], 2, "not a number"),
        (["search", "x", "--filter", "created_at<June"], 2, "not a date"),
    ],
)
def test_cli_bad_input_one_line(
    cli_project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, needle: str
) -> None:
    assert main([*argv, "--mode", "keyword", "--root", str(cli_project)]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and "\n" not in err


def test_cli_no_index_yet(cli_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    shutil.rmtree(cli_project / "index")
    pipeline.search.project._SEARCHERS.clear()
    assert (
        main(["search", "x", "--mode", "keyword", "--root", str(cli_project)])
        == NotFoundError.exit_code
    )
    assert "no index built yet" in capsys.readouterr().err


def test_cli_verify(cli_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "verify", "--root", str(cli_project)]) == 0
    assert capsys.readouterr().out.startswith("ok: 30 vectors")


def test_pipeline_search_is_callable(cli_project: Path) -> None:
    import pipeline.search.api

    hits = pipeline.search("bread oven", k=1, mode="keyword", root=cli_project)
    assert hits[0].prompt == "bake bread in a hot oven"


def test_cli_verify_fails_on_a_gap(cli_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.store.db import connect

    con = connect(cli_project / "store.duckdb", read_only=False)
    con.execute("DELETE FROM records WHERE id = 'rec-3'")
    con.close()
    assert main(["index", "verify", "--root", str(cli_project)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("problem: 1 vector id(s) are not kept records")


def test_second_writer_is_busy(cli_project: Path) -> None:
    from pipeline.errors import BusyError
    from pipeline.index import erase_rids
    from pipeline.index.build import writer_lock

    with writer_lock(cli_project / "index"), pytest.raises(BusyError, match="another build"):
        erase_rids(cli_project / "index", {1})
