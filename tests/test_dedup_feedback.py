"""Service feedback feeds curation: the keep policy and the quality of unscored records."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_dedup_stage import make_cfg, write_jsonl

from pipeline.cli import main as cli_main
from pipeline.config import to_yaml
from pipeline.dedup.policy import priority
from pipeline.errors import UserInputError
from pipeline.io.files import read_feedback_scores
from pipeline.record import Record
from pipeline.stages.dedup import run


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _snapshot(path: Path, scores: dict[str, float]) -> Path:
    ids = sorted(scores)
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "rid": pa.array(range(len(ids)), pa.int64()),
            "feedback_score": pa.array([scores[i] for i in ids], pa.float64()),
            "feedback_count": pa.array([1] * len(ids), pa.int64()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def test_feedback_desc_prefers_the_better_rated_record() -> None:
    records = [Record(rid=i, id=name, prompt="p") for i, name in enumerate("abc")]
    policy = ["feedback_desc", "input_order"]
    assert list(priority(records, policy, {"b": 0.9, "c": 0.2})) == [2, 0, 1]
    assert list(priority(records, policy)) == [0, 1, 2]  # no feedback: input order


def test_stage_uses_the_snapshot_for_survivors_and_quality(tmp_path: Path, mlflow_uri: str) -> None:
    prompt = "Where is my parcel? It was due on Monday and the tracking page shows nothing."
    data = write_jsonl(
        tmp_path / "raw" / "rows.jsonl",
        [
            {"id": "first", "prompt": prompt, "response": "Let me check."},
            {"id": "liked", "prompt": prompt.upper(), "response": "let me check."},
            {"id": "other", "prompt": "Translate 'good morning' into French.", "quality": 2},
        ],
    )
    _snapshot(tmp_path / "data" / "feedback.parquet", {"liked": 1.0, "other": 0.0})
    report = run(make_cfg(tmp_path, data, mlflow_uri), tmp_path)
    assert report["feedback"] == {"records_rated": 2, "quality_from_feedback": 1}
    kept = {r["id"]: r for r in pq.read_table(tmp_path / "data/dedup/records.parquet").to_pylist()}
    assert set(kept) == {"liked", "other"}  # the rated copy survives, not the first one
    assert kept["liked"]["quality"] == 5.0  # unscored: 1 + 4 x 1.0
    assert kept["other"]["quality"] == 2.0  # a user's own score is never overwritten


def test_a_broken_snapshot_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "feedback.parquet"
    bad.write_text("not parquet")
    with pytest.raises(UserInputError, match=r"feedback\.parquet"):
        read_feedback_scores(bad)
    assert read_feedback_scores(tmp_path / "absent.parquet") == {}


def test_cli_snapshot_from_an_empty_service_db(tmp_path: Path, mlflow_uri: str, capsys) -> None:
    cfg = make_cfg(tmp_path, tmp_path / "raw", mlflow_uri)
    cfg.paths.service_db = str(tmp_path / "service.duckdb")
    cfg.paths.feedback = str(tmp_path / "out" / "feedback.parquet")
    params = tmp_path / "params.yaml"
    params.write_text(to_yaml(cfg), encoding="utf-8")
    assert cli_main(["stats", "feedback", "--params", str(params), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records_rated"] == 0
    assert read_feedback_scores(Path(cfg.paths.feedback)) == {}
