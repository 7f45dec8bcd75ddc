"""Semantic dedup (`dedup.semantic`): FAISS pairs against brute-force cosine, the guards that
keep a changed number, a negation or another label apart, and the step in the real stage
with the real encoder, a real DuckDB store and the shared embedding cache."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pipeline.config import compose
from pipeline.dedup.semantic import (
    Guards,
    Pairs,
    apply_guards,
    clusters,
    negations_of,
    numbers_of,
    similar_pairs,
)
from pipeline.errors import UserInputError
from pipeline.stages.dedup import run


def planted(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Random unit vectors, every 10th one a small perturbation of the one before it."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x[1::10] = x[0::10][: len(x[1::10])] + 0.05 * rng.standard_normal((len(x[1::10]), dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(x: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    sims = x @ x.T
    i, j = np.nonzero(np.triu(sims >= threshold, k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


def as_set(pairs: Pairs) -> set[tuple[int, int]]:
    return set(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))


def test_exact_search_finds_the_brute_force_pairs_with_their_cosine() -> None:
    x = planted(500)
    pairs = similar_pairs(x, 0.9)
    assert as_set(pairs) == brute_force(x, 0.9)
    assert len(pairs) >= 45  # the planted pairs, at cosine ~0.999
    cosine = np.einsum("ij,ij->i", x[pairs.left], x[pairs.right])
    assert np.allclose(pairs.cosine, cosine, atol=1e-5)


def test_the_clustered_search_recalls_the_exact_pairs_and_finds_no_false_ones() -> None:
    x = planted(3000)
    exact = brute_force(x, 0.9)
    found = as_set(similar_pairs(x, 0.9, exact_below=1000, clusters_per_record=0.01, probe=4))
    assert found <= exact  # within a cluster the cosine is exact
    assert len(found) >= 0.95 * len(exact)


def test_numbers_and_negations_are_read_from_the_text() -> None:
    assert numbers_of("Book 2 tickets for $1,250.50 on 3 May") == ("1,250.50", "2", "3")
    assert negations_of("It doesn't work, I can't log in and cannot reset it") == 3
    assert negations_of("Is the museum not open?") == negations_of("Is it never open?") == 1
    assert negations_of("Is the museum open?") == 0


def test_guards_keep_other_numbers_negations_labels_and_truncated_texts_apart() -> None:
    texts = {0: "Book 2 tickets", 1: "Reserve 2 tickets", 2: "Book 3 tickets",
             3: "Do not book tickets", 4: "Book tickets", 5: "Book tickets now"}  # fmt: skip
    labels = ["a", "a", "a", "a", "a", "b"]
    truncated = dict.fromkeys(texts, False)
    pairs = Pairs(np.array([0, 0, 3, 4, 0]), np.array([1, 2, 4, 5, 1]), np.full(5, 0.97))
    kept, counts = apply_guards(pairs, texts, labels, truncated, Guards())
    assert as_set(kept) == {(0, 1)}
    assert counts.as_dict() == {"label": 1, "numbers": 1, "negations": 1, "truncated": 0}
    assert counts.by_label_pair == {"a | b": 1}
    truncated[1] = True
    kept, counts = apply_guards(pairs, texts, labels, truncated, Guards())
    assert len(kept) == 0 and counts.truncated == 2
    off = Guards(same_label=False, same_numbers=False, same_negations=False, whole_texts=False)
    assert len(apply_guards(pairs, texts, labels, truncated, off)[0]) == 5


def test_components_keep_the_best_ranked_member_and_report_its_cosine() -> None:
    x = planted(20)
    pairs = Pairs(np.array([0, 1, 10]), np.array([1, 2, 11]), np.ones(3, np.float32))
    rank = np.arange(20)[::-1].copy()  # higher positions rank better
    removed, survivor, cosine = clusters(20, pairs, rank, x)
    assert removed.tolist() == [0, 1, 10]
    assert survivor.tolist() == [2, 2, 11]  # 0~1~2 is one component: 2 survives
    assert np.allclose(cosine, np.einsum("ij,ij->i", x[removed], x[survivor]))


def test_bad_settings_name_the_key() -> None:
    from pipeline.dedup.steps.semantic import SemanticDedup

    with pytest.raises(UserInputError, match="threshold"):
        SemanticDedup(threshold=1.5)
    with pytest.raises(UserInputError, match="min_records"):
        SemanticDedup(min_records=-1)


ROWS = [
    {"id": "p1", "prompt": "How do I reset my password?", "label": "support", "quality": 1},
    {"id": "p2", "prompt": "How can I reset my password?", "label": "support", "quality": 5},
    {"id": "p3", "prompt": "Quick question: how do I reset my password?", "label": "support"},
    {"id": "c1", "prompt": "What is the capital of France?", "label": "qa"},
    {"id": "c2", "prompt": "What's the capital city of France?", "label": "qa"},
    {"id": "n1", "prompt": "Is the museum open on Sunday?", "label": "qa"},
    {"id": "n2", "prompt": "Is the museum not open on Sunday?", "label": "qa"},  # negated
    {"id": "m1", "prompt": "Book 2 tickets to Paris for Friday.", "label": "travel"},
    {"id": "m2", "prompt": "Book 3 tickets to Paris for Friday.", "label": "travel"},  # number
    {"id": "l1", "prompt": "How do I reset my password? Asking for my team.", "label": "other"},
    {"id": "z1", "prompt": "Write a haiku about autumn leaves.", "label": "writing"},
]  # fmt: skip
SEMANTIC_ON = ("dedup.semantic.min_records=0", "dedup.semantic.threshold=0.9")


def stage(root: Path, *overrides: str) -> dict:
    raw = root / "raw" / "a.jsonl"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    cfg = compose([f"tracking.uri=sqlite:///{root / 'mlflow.db'}", *overrides])
    cfg.data.path = str(raw.parent)
    return run(cfg, root)


def duplicates(root: Path) -> dict[str, tuple[str, str, float]]:
    con = duckdb.connect(str(root / "data" / "dedup" / "store.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT id, duplicate_of, method, similarity FROM duplicates").fetchall()
    finally:
        con.close()
    return {i: (of, method, sim) for i, of, method, sim in rows}


@pytest.fixture(scope="module")
def semantic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("semantic")
    return root, stage(root, *SEMANTIC_ON)


@pytest.mark.slow
def test_paraphrases_are_dropped_for_the_best_ranked_one(semantic_run) -> None:
    root, report = semantic_run
    dups = duplicates(root)
    # p2 has the best quality: p1 and p3 (paraphrases of it) go; c1 comes first, c2 goes.
    assert {i: of for i, (of, _, _) in dups.items()} == {"p1": "p2", "p3": "p2", "c2": "c1"}
    for _, method, similarity in dups.values():
        assert method == "semantic" and 0.9 <= similarity <= 1.0
    semantic = {k: v for k, v in report["steps"]["semantic"].items()
                if k not in ("candidates", "held_back")}  # fmt: skip
    assert semantic == {"input": 11, "dropped": 3, "kept": 8, "by_reason": {"semantic": 3}}
    assert report["accounting"]["holds"]
    assert "steps.semantic.dropped" in report["accounting"]["equation"]


@pytest.mark.slow
def test_a_negated_a_renumbered_and_a_relabelled_twin_are_kept(semantic_run) -> None:
    root, _ = semantic_run
    dropped = set(duplicates(root))
    assert not dropped & {"n1", "n2", "m1", "m2", "l1", "z1"}


@pytest.mark.slow
def test_the_guards_counts_are_in_the_report_and_mlflow(semantic_run) -> None:
    from mlflow.tracking import MlflowClient

    root, report = semantic_run
    semantic = report["steps"]["semantic"]
    held = semantic["held_back"]
    assert set(held) == {"label", "numbers", "negations", "truncated"}
    # n1/n2 differ in a negation, m1/m2 in a number (l1 stays under the cosine threshold).
    assert held["negations"] >= 1 and held["numbers"] >= 1
    # Every candidate pair either passed (3 of them merged 4 records into 1 and 2 into 1)
    # or was held back by exactly one guard.
    assert semantic["candidates"] >= 3 + sum(held.values())
    written = json.loads((root / "reports" / "dedup.json").read_text())
    assert written["steps"]["semantic"]["held_back"] == held
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    (run,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "attributes.run_name = 'dedup'"
    )
    metrics = run.data.metrics
    assert metrics["steps.semantic.held_back.negations"] == held["negations"]
    assert metrics["steps.semantic.candidates"] == semantic["candidates"]


@pytest.mark.slow
def test_the_vectors_are_in_the_cache_the_index_stage_reads(semantic_run) -> None:
    from pipeline.embed import EmbedSettings, embed
    from pipeline.stages.index import kept_texts

    root, _ = semantic_run
    settings = EmbedSettings.from_cfg(compose().embed)
    _, texts, _ = kept_texts(root / "data" / "dedup" / "records.parquet", settings)
    assert len(texts) == 8
    assert embed(texts, settings, root / "data" / "cache" / "embeddings").encoded == 0


def test_a_disabled_step_drops_nothing_and_is_not_counted(tmp_path: Path) -> None:
    report = stage(tmp_path, *SEMANTIC_ON, "dedup.semantic.enabled=false")
    assert list(report["steps"]) == ["quality", "exact", "near"]
    assert report["kept"] == len(ROWS) and report["accounting"]["holds"]
    assert duplicates(tmp_path) == {}
    assert not (tmp_path / "data" / "cache").exists()  # no encoder was loaded


def test_below_min_records_the_step_runs_without_the_encoder(tmp_path: Path) -> None:
    report = stage(tmp_path)  # the default min_records is above these 11 records
    assert report["steps"]["semantic"]["dropped"] == 0 and report["kept"] == len(ROWS)
    # The same keys as a run that searched, so `dvc metrics diff` compares like with like.
    assert report["steps"]["semantic"]["candidates"] == 0
    assert report["steps"]["semantic"]["held_back"] == dict.fromkeys(
        ("label", "numbers", "negations", "truncated"), 0
    )
    assert not (tmp_path / "data" / "cache").exists()
