"""Secrets in the real dedup stage: placeholders in the store, records.parquet and rejected
lines, counts in reports/dedup.json and MLflow; disabled keeps the text verbatim."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from mlflow.tracking import MlflowClient
from test_dedup_stage import make_cfg, write_jsonl

from pipeline.stages.dedup import run
from pipeline.store.records import show

pytestmark = pytest.mark.slow  # two whole dedup runs with MLflow

KEY = "sk-proj-Zx8Kq2Lm7Pz4Rt8Vw1Ys6Bn3Cd5Fg0Hj2Kl4Mn6Qp9Rs1Tu3Vw5Xy7Za"
DB_URL = "postgres://app:S3cr3t!x@db.example.com:5432/prod"
GH = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
ROWS = [
    {"id": "k", "prompt": f"why does OPENAI_API_KEY={KEY} give 401?", "response": "Rotate it."},
    {"id": "u", "prompt": f"connect with {DB_URL}", "response": "mail ana@example.org"},
    {"id": "t", "prompt": "push fails", "response": f"use https://{GH}@github.com/a/b.git"},
    {
        "id": "n",
        "prompt": "commit 3f786850e387550fdab836ed7e6dc881de23001b broke it",
        "response": "ok",
    },
    f'{{"id": "bad", "prompt": "token {GH}"',  # broken JSON: stored as rejected, raw redacted
]
SECRETS = (KEY, "S3cr3t!x", GH)


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _everything(store: Path) -> str:
    """Every text column of every row in the store and records.parquet, as one string."""
    con = duckdb.connect(str(store), read_only=True)
    sources = ("records", "rejected", f"'{store.parent / 'records.parquet'}'")
    parts = [str(con.execute(f"SELECT * FROM {source}").fetchall()) for source in sources]
    con.close()
    return "\n".join(parts)


def test_secrets_are_redacted_in_the_store_and_counted(tmp_path: Path, mlflow_uri: str) -> None:
    write_jsonl(tmp_path / "raw" / "a.jsonl", ROWS)
    report = run(make_cfg(tmp_path, tmp_path / "raw", mlflow_uri), tmp_path)
    assert report["secrets"] == {
        "total": 3,
        "by_type": {"api_key": 1, "connection_string": 1, "token": 1},
    }
    # Secrets run first: the connection string's `S3cr3t!x@db.example.com` is no e-mail.
    assert report["pii"]["by_type"] == {"email": 1}
    assert report["accounting"]["holds"]
    store = tmp_path / "data" / "dedup" / "store.duckdb"
    shown = show(store, "k")
    assert shown["record"]["prompt"] == "why does OPENAI_API_KEY=<API_KEY> give 401?"
    assert shown["pii"] == [{"field": "prompt", "pii_type": "api_key", "count": 1}]
    assert show(store, "u")["record"]["prompt"] == "connect with <CONNECTION_STRING>"
    assert "<TOKEN>@github.com" in show(store, "t")["record"]["response"]
    assert "3f786850e387550fdab836ed7e6dc881de23001b" in show(store, "n")["record"]["prompt"]
    everything = _everything(store)
    assert not [s for s in SECRETS if s in everything]
    assert "token <TOKEN>" in everything  # the rejected line's raw text

    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("prompt-pipeline-curation").experiment_id
    runs = client.search_runs(
        [experiment], filter_string=f"tags.data_hash = '{report['data_hash']}'"
    )
    metrics = runs[0].data.metrics
    assert metrics["secrets.total"] == 3 and metrics["secrets.by_type.api_key"] == 1


def test_disabled_keeps_secrets_verbatim(tmp_path: Path, mlflow_uri: str) -> None:
    write_jsonl(tmp_path / "raw" / "a.jsonl", ROWS)
    cfg = make_cfg(tmp_path, tmp_path / "raw", mlflow_uri, "dedup.secrets.enabled=false")
    report = run(cfg, tmp_path)
    assert report["secrets"] == {"total": 0, "by_type": {}}
    store = tmp_path / "data" / "dedup" / "store.duckdb"
    assert show(store, "k")["record"]["prompt"] == f"why does OPENAI_API_KEY={KEY} give 401?"
    assert GH in _everything(store)
