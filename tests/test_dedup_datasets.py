"""Accounting on the bundled sample and the public datasets (../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from pipeline.config import compose
from pipeline.stages.dedup import run
from pipeline.store.records import show

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _run(tmp_path: Path, mlflow_uri: str, data: str, path: Path) -> dict:
    # Semantic dedup off: these check exact and near against their ground truth, and its
    # encoder would embed every record (tests/test_dedup_semantic.py covers it).
    cfg = compose([f"data={data}", f"tracking.uri={mlflow_uri}", "dedup.semantic.enabled=false"])
    cfg.data.path = str(path)
    report = run(cfg, tmp_path)
    assert report["accounting"]["holds"], report["accounting"]
    return report


@pytest.mark.slow
def test_bundled_sample_matches_its_ground_truth(tmp_path: Path, mlflow_uri: str) -> None:
    raw = REPO / "data" / "raw"
    truth_file = REPO / "tests" / "data" / "sample_truth.json"
    if not any(raw.glob("*")) or not truth_file.exists():
        pytest.skip("the bundled sample is absent (python -m pipeline.sample)")
    truth = json.loads(truth_file.read_text())
    report = _run(tmp_path, mlflow_uri, "sample", raw)
    counts = truth["counts"]
    assert report["input_records"] == counts["input_rows"]
    assert report["rejected"]["total"] == counts["rejected"]
    assert report["exact_duplicates"] == counts["exact_duplicates"]
    assert report["near_duplicates"] == counts["near_duplicates"]
    assert report["kept"] == counts["kept"]
    store = tmp_path / "data" / "dedup" / "store.duckdb"
    con = duckdb.connect(str(store), read_only=True)
    found = con.execute("SELECT file, line, reason FROM rejected").fetchall()
    rejected = {f"{f}:{n}": r for f, n, r in found}
    duplicate_of = dict(con.execute("SELECT id, duplicate_of FROM duplicates").fetchall())
    con.close()
    for item in truth["rejected"]:
        assert f"{item['file']}:{item.get('line', item.get('row'))}" in rejected, item

    def survivor(record_id: str) -> str:
        while record_id in duplicate_of:
            record_id = duplicate_of[record_id]
        return record_id

    # The keep policy may pick either member of a planted pair; both end at one survivor.
    for method in ("exact", "near"):
        for item in truth[f"{method}_duplicates"]:
            assert survivor(item["id"]) == survivor(item["duplicate_of"]), item
            assert item["id"] in duplicate_of or item["duplicate_of"] in duplicate_of
    assert show(store, truth["exact_duplicates"][0]["id"])["status"] in ("kept", "duplicate")


@pytest.mark.slow
@pytest.mark.shared_data
def test_t0_prompts(tmp_path: Path, mlflow_uri: str, t0_prompts_path: Path) -> None:
    report = _run(tmp_path, mlflow_uri, "t0_prompts", t0_prompts_path)
    assert report["input_records"] == 55_185 and report["rejected"]["total"] == 0
    # 1,153 records repeat an earlier (prompt, response) pair exactly (data README).
    assert report["exact_duplicates"] == 1_153
    store = tmp_path / "data" / "dedup" / "store.duckdb"
    record = show(store, "adversarial_qa/dbert_answer_the_following_q/1")["record"]
    assert record["label"] == "extractive_qa"
    assert record["metadata"]["source_dataset"] == "adversarial_qa"


@pytest.mark.slow
@pytest.mark.shared_data
def test_hh_rlhf(tmp_path: Path, mlflow_uri: str, hh_rlhf_path: Path) -> None:
    report = _run(tmp_path, mlflow_uri, "hh_rlhf", hh_rlhf_path)
    assert report["input_lines"] == 2_312
    assert report["input_records"] == 5_756  # one record per Human turn of `chosen`
    # 5 lines differ before the final reply: no preference for them.
    assert report["preferences"] == 2_307
    store = tmp_path / "data" / "dedup" / "store.duckdb"
    name = hh_rlhf_path.name
    session = show(store, f"{name}:1255:1")["session"]  # 0-based line 1254 in the README
    assert [t["turn"] for t in session] == [1, 2]
    assert show(store, f"{name}:87:2")["record"]["response"] == ""  # an empty chosen reply
