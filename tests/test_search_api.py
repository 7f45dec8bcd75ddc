"""Searcher: pre-filters that still return k, keyword and hybrid, reloads, CLI errors."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers.search import build_project
from helpers.wait import wait_until

import pipeline
from pipeline.cli import main
from pipeline.config import compose, to_yaml
from pipeline.errors import NotFoundError, UserInputError
from pipeline.index.build import publish_index
from pipeline.index.factory import IndexSettings
from pipeline.search.api import Searcher, SearchSettings
from pipeline.search.hybrid import convex_combination, fuse, normalize, reciprocal_rank_fusion
from pipeline.store.scope import Scope


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
    hits = searcher.search_vector(query, k=10, filters=filters, scope=Scope.all())
    assert len(hits) == 10
    assert all(h.label in ("rare", "support") for h in hits)
    # Compare with brute force over the allowed records only.
    state = searcher._state
    rows = searcher._allowed_rows(
        state, tuple(pipeline.search.filters.as_conditions(filters)), Scope.all()
    )
    assert len(rows) == allowed
    truth = set(state.rids[rows[np.argsort(-(vectors_of(state, rows) @ query))[:10]]].tolist())
    assert len({h.rid for h in hits} & truth) >= 9


def vectors_of(state, rows):
    return np.asarray(state.vectors[rows])


def test_scope_is_anded_with_filters(hnsw_project: tuple[Path, np.ndarray]) -> None:
    root, vectors = hnsw_project
    searcher = Searcher(root / "index", root / "store.duckdb", SearchSettings(), None)
    scope = Scope.of({"user_id": ("user-1", "user-2")})
    hits = searcher.search_vector(vectors[0], k=20, filters=["quality>=3"], scope=scope)
    assert len(hits) == 20
    assert all(h.user_id in ("user-1", "user-2") and h.quality >= 3 for h in hits)
    assert (
        searcher.search_vector(vectors[0], k=5, filters=["label=nobody"], scope=Scope.all()) == []
    )


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
    hits = searcher.search("damaged parcel refund", k=10, mode="keyword", scope=Scope.all())
    prompts = [h.prompt for h in hits]
    assert prompts[:5] == ["how do I get a refund for a damaged parcel"] * 5
    assert prompts[5:] == ["my parcel arrived damaged and wet"] * 5
    assert hits[0].scores["keyword"] > hits[-1].scores["keyword"] > 0
    assert searcher.search("zebra", k=3, mode="keyword", scope=Scope.all()) == []
    filtered = searcher.search(
        "parcel", k=10, mode="keyword", filters=["origin=real"], scope=Scope.all()
    )
    assert filtered and all(h.origin == "real" for h in filtered)
    with pytest.raises(UserInputError, match="query encoder"):
        searcher.search("parcel", mode="vector", scope=Scope.all())


def test_keyword_search_after_a_republish_answers_from_the_new_index(text_project: Path) -> None:
    """The keyword matrix loads on the first keyword query; an index republished (an
    erasure by another process) since the snapshot loaded must not give a mismatch error."""
    import numpy as np

    from pipeline.index import erase_rids

    searcher = Searcher(
        text_project / "index", text_project / "store.duckdb", SearchSettings(), None
    )
    rids = np.load(text_project / "index" / "rids.npy")
    erase_rids(text_project / "index", {int(rids[0])})  # republished behind its back
    hits = searcher.search("parcel", k=50, mode="keyword", scope=Scope.all())
    assert hits and int(rids[0]) not in {h.rid for h in hits}


def test_hybrid_fuses_both_rankings(text_project: Path) -> None:
    index_dir, store = text_project / "index", text_project / "store.duckdb"
    state_vectors = np.load(index_dir / "vectors.npy")
    # The "encoder" maps every query to the vector of the oven record (row order is rid order).
    oven_row = 4
    searcher = Searcher(index_dir, store, SearchSettings(), lambda text: state_vectors[oven_row])
    hits = searcher.search("password", k=5, mode="hybrid", with_session=True, scope=Scope.all())
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


def test_weighted_rrf_leans_towards_the_heavier_ranking() -> None:
    plain = reciprocal_rank_fusion([[1, 2], [2, 1]], k=10)
    assert plain[0][1] == plain[1][1]  # a tie, broken by id
    keyword_heavy = reciprocal_rank_fusion([[1, 2], [2, 1]], k=10, weights=[0.6, 1.4])
    assert [item for item, _ in keyword_heavy] == [2, 1]
    # fuse's rrf with alpha 0.5 is plain RRF, scores included.
    same = fuse([1, 2, 3], [3, 1, 4], None, None, fusion="rrf", alpha=0.5, rrf_k=60)
    assert same == reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60)
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([[1], [2]], weights=[1.0])


def test_normalize_scales_and_all_zero_scores_stay_zero() -> None:
    np.testing.assert_allclose(normalize(np.array([2.0, 4.0, 6.0]), "minmax"), [0, 0.5, 1])
    np.testing.assert_allclose(normalize(np.array([2.0, 4.0, 8.0]), "max"), [0.25, 0.5, 1])
    z = normalize(np.array([1.0, 2.0, 3.0, 10.0]), "zscore")
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
    for how in ("minmax", "zscore"):
        assert normalize(np.array([3.0, 3.0]), how).tolist() == [0.0, 0.0]
    assert normalize(np.array([3.0, 3.0]), "max").tolist() == [1.0, 1.0]
    for how in ("minmax", "zscore", "max"):
        assert normalize(np.zeros(2), how).tolist() == [0.0, 0.0]  # e.g. no keyword matched
        assert len(normalize(np.zeros(0), how)) == 0
    with pytest.raises(ValueError, match="unknown"):
        normalize(np.array([1.0]), "softmax")


def test_convex_combination_weighs_normalised_scores() -> None:
    items = np.array([5, 3, 9])
    vector, keyword = np.array([0.9, 0.5, 0.1]), np.array([0.0, 10.0, 5.0])
    # minmax: vector -> 1, .5, 0; keyword -> 0, 1, .5
    fused = convex_combination(items, vector, keyword, alpha=0.5, how="minmax")
    assert fused == [(3, 0.75), (5, 0.5), (9, 0.25)]
    assert [i for i, _ in convex_combination(items, vector, keyword, 1.0)] == [5, 3, 9]
    assert [i for i, _ in convex_combination(items, vector, keyword, 0.0)] == [3, 9, 5]
    # Ties are broken by id, so the order is deterministic.
    tied = convex_combination(np.array([7, 2]), np.array([1.0, 1.0]), np.array([0.0, 0.0]), 0.5)
    assert [i for i, _ in tied] == [2, 7]
    with pytest.raises(ValueError, match="alpha"):
        convex_combination(items, vector, keyword, alpha=1.5)
    with pytest.raises(ValueError, match="length"):
        convex_combination(items, vector[:2], keyword, alpha=0.5)


def test_convex_fuse_scores_every_candidate_on_both_sides() -> None:
    """A row found only by the vector side still counts its BM25 score, and vice versa."""
    vector_all = np.array([0.0, 0.9, 0.8, 0.1])
    keyword_all = np.array([0.0, 1.0, 9.0, 10.0])
    fused = fuse(
        np.array([1]),  # vector top-1: row 1
        np.array([3]),  # keyword top-1: row 3
        lambda rows: vector_all[rows],
        lambda rows: keyword_all[rows],
        fusion="convex",
        alpha=0.5,
        normalization="max",
    )
    # Only the union {1, 3} is ranked; row 3's cosine and row 1's BM25 are looked up.
    assert [row for row, _ in fused] == [3, 1]
    np.testing.assert_allclose([s for _, s in fused], [0.5 * 0.1 / 0.9 + 0.5, 0.5 + 0.05])
    with pytest.raises(ValueError, match="fusion"):
        fuse([1], [2], None, None, fusion="borda")


@pytest.mark.parametrize(
    ("settings", "top"),
    [
        (
            SearchSettings(fusion="convex", alpha=1.0, normalization="max"),
            "bake bread in a hot oven",
        ),
        (
            SearchSettings(fusion="convex", alpha=0.0, normalization="max"),
            "reset my password please",
        ),
        (SearchSettings(fusion="rrf", alpha=0.9, rrf_k=1), "bake bread in a hot oven"),
        (SearchSettings(fusion="rrf", alpha=0.1, rrf_k=1), "reset my password please"),
    ],
    ids=["convex-vector", "convex-keyword", "rrf-vector", "rrf-keyword"],
)
def test_searcher_hybrid_follows_the_fusion_settings(
    text_project: Path, settings: SearchSettings, top: str
) -> None:
    index_dir, store = text_project / "index", text_project / "store.duckdb"
    vectors = np.load(index_dir / "vectors.npy")
    oven_row = 4  # the "encoder" maps every query to the oven record's vector
    searcher = Searcher(index_dir, store, settings, lambda text: vectors[oven_row])
    hits = searcher.search("password", k=3, mode="hybrid", scope=Scope.all())
    assert hits[0].prompt == top
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.scores["vector"] is not None and h.scores["keyword"] is not None for h in hits)
    if settings.fusion == "convex":  # max normalisation: the side with all the weight tops at 1
        assert hits[0].score == pytest.approx(1.0)
    searcher.close()


@pytest.mark.parametrize(
    "bad",
    [{"fusion": "borda"}, {"normalization": "softmax"}, {"alpha": 1.5}, {"alpha": -0.1}],
)
def test_search_settings_reject_bad_fusion(bad: dict) -> None:
    with pytest.raises(UserInputError, match="search\\."):
        SearchSettings.from_cfg(bad)


def test_searcher_answers_during_rebuild_and_reloads(tmp_path: Path) -> None:
    table, vectors = build_project(tmp_path, n=3000, dim=16, factory="HNSW16,Flat")
    searcher = Searcher(tmp_path / "index", tmp_path / "store.duckdb", SearchSettings(), None)
    errors: list[BaseException] = []
    answered = [0, 0]  # per thread
    stop = threading.Event()

    def hammer(me: int) -> None:
        while not stop.is_set():
            try:
                assert len(searcher.search_vector(vectors[7], k=5, scope=Scope.all())) == 5
                searcher.reload_if_changed()
                answered[me] += 1
            except BaseException as exc:
                errors.append(exc)
                return

    def both_answer_again() -> bool:
        before = list(answered)
        return wait_until(
            lambda: errors or all(now > then for now, then in zip(answered, before, strict=True)),
            "both searchers to answer",
        )

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    both_answer_again()
    rids = np.asarray(table.column("rid").to_pylist(), dtype=np.int64)
    for _ in range(3):  # republish the same records under the searchers' feet
        publish_index(
            tmp_path / "index", rids, vectors, ["x"] * 3000, IndexSettings(factory="Flat"), {}
        )
        both_answer_again()  # each republish is seen by searchers still answering
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
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
            'label="\' OR 1=1 --"',
            "--root",
            str(cli_project),
        ]
    )
    assert code == 0 and json.loads(capsys.readouterr().out)["results"] == []


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


def test_second_index_build_is_busy_before_reading_anything(
    cli_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The writer lock comes first: with the kept records gone, a build that read (or
    embedded) before locking would fail with "no kept records" (exit 3), not exit 4."""
    from pipeline.io.lock import exclusive

    (cli_project / "data" / "dedup" / "records.parquet").unlink(missing_ok=True)
    with exclusive(cli_project / "data" / ".writer.lock", "pipeline dedup"):
        code = main(["index", "build", "--root", str(cli_project)])
    err = capsys.readouterr().err
    assert code == 4, err
    assert f"`pipeline dedup` (pid {os.getpid()})" in err and "no kept records" not in err
