"""The retrieval loop end to end, slow: a real `pipeline serve` process over a real index of
real MiniLM embeddings; a search over HTTP names its query, a writer grades its results, the
snapshot is taken, and `pipeline retrieval` (the DVC stage's command) measures every
variant on that judged query, writes the metric file and an MLflow run that
`pipeline runs --kind retrieval` lists."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from helpers.serve import build_index, build_store, start_serve, write_params

from pipeline.service.keys import create_key

REPO = Path(__file__).resolve().parent.parent


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *argv], capture_output=True, text=True, cwd=cwd,
        timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_a_judged_search_is_measured_by_the_retrieval_stage(tmp_path: Path) -> None:
    config = build_store(tmp_path)
    build_index(config, real_encoder=True)
    params = write_params(config, tmp_path)
    defaults = yaml.safe_load((REPO / "params.yaml").read_text())
    sections = yaml.safe_load(params.read_text())
    sections |= {"seed": 42, "search": {}, "embed": {}, "retrieval": defaults["retrieval"]}
    sections["rag"] = defaults["rag"]
    sections["tracking"]["experiment"] = "retrieval-test"
    params.write_text(yaml.safe_dump(sections))
    db = config.paths.service_db
    reader, writer = (create_key(db, role, role)[0] for role in ("reader", "writer"))

    proc, url, _log = start_serve(params, tmp_path)
    try:
        found = httpx.post(
            f"{url}/search", json={"text": "my parcel came damaged, I want my money back",
                                   "mode": "hybrid", "k": 5},
            headers={"X-API-Key": reader}, timeout=60,
        )  # fmt: skip
        assert found.status_code == 200, found.text
        query_id, ids = found.json()["query_id"], [h["id"] for h in found.json()["results"]]
        assert "b1" in ids  # the refund record, found by meaning
        other = next(i for i in ids if i != "b1")
        graded = httpx.post(
            f"{url}/judgments",
            json={"query_id": query_id, "grades": [{"record_id": "b1", "grade": 3},
                                                   {"record_id": other, "grade": 0}]},
            headers={"X-API-Key": writer}, timeout=60,
        )  # fmt: skip
        assert graded.status_code == 201, graded.text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    snapshot = _cli("stats", "feedback", "--params", str(params), "--json", cwd=tmp_path)
    assert snapshot.returncode == 0, snapshot.stderr
    assert json.loads(snapshot.stdout)["judged_queries"] == 1

    done = _cli("retrieval", "--params", str(params), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    metric = json.loads((config.paths.reports / "retrieval.json").read_text())
    judged = metric["judged"]
    assert judged["queries"] == 1 and judged["judged_queries"] == 1
    assert set(judged) >= {"vector", "keyword", "hybrid", "hybrid_session", "hybrid_mmr"}
    assert judged["hybrid"]["recall@10"] == 1.0 and judged["vector"]["recall@10"] == 1.0
    assert 0 < judged["hybrid"]["ndcg@10"] <= 1 and judged["hybrid"]["mrr@10"] > 0
    # The context `pipeline rag` builds for the judged query cites the refund record.
    assert judged["context_recall"] == 1.0 and judged["context_queries"] == 1
    assert 0 < judged["context_tokens"] <= metric["rag"]["budget_tokens"]
    # Latencies and run ids stay out of the metric file (dvc metrics diff shows quality).
    assert "latency_ms" not in metric and "mlflow_run_id" not in metric
    facts = json.loads((config.paths.reports / "run" / "retrieval.json").read_text())
    assert facts["latency_ms"]["judged"]["hybrid"]["p50"] > 0
    assert facts["latency_ms"]["judged"]["rag_context"]["p50"] > 0

    runs = _cli("runs", "--kind", "retrieval", "--params", str(params), "--json", cwd=tmp_path)
    assert runs.returncode == 0, runs.stderr
    (row,) = json.loads(runs.stdout)
    assert row["run_id"] == facts["mlflow_run_id"]
    assert row["judged.hybrid.recall_at_10"] == 1.0 and row["fusion"] is not None
    assert row["judged.context_recall"] == 1.0
    assert (
        "ctx" in _cli("runs", "--kind", "retrieval", "--params", str(params), cwd=tmp_path).stdout
    )
