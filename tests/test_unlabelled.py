"""Logs without labels through the real CLI stages on a tmp project (real DuckDB, MLflow
sqlite store, FAISS): an unlabelled chat export -> train and evaluate skip with a reason and
exit 0, index and search work (the system prompt too); partly labelled -> trained on the
labelled only, counted."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import compose, to_yaml
from pipeline.io.reports import read_report

pytestmark = pytest.mark.slow

TOPICS = {
    "billing": "invoice refund charge payment card receipt",
    "travel": "flight hotel passport luggage airport museum",
    "code": "python function compile loop variable exception",
}
# Tiny models so each test stays well under a minute on a shared machine.
TINY = [
    "model=textcnn",
    "model.max_length=32",
    "model.net.embed_dim=16",
    "model.net.channels=8",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "split.val_fraction=0.2",
    "split.test_fraction=0.2",
    "evaluate.onnx=false",
]


def write_logs(root: Path, n: int, labelled: int = 0) -> Path:
    """n flat log records (prompt, response); the first `labelled` carry a label, the others
    have no label field at all, as exports do."""
    rng = random.Random(0)
    rows = []
    for i in range(n):
        topic = list(TOPICS)[i % 3]
        words = [rng.choice(TOPICS[topic].split()) for _ in range(5)]
        row = {"id": f"log-{i}", "prompt": f"{' '.join(words)} case {i}", "response": "done"}
        if i < labelled:
            row["label"] = topic
        rows.append(row)
    path = root / "data" / "raw" / "logs.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_chat_export(root: Path, conversations: int) -> Path:
    """An OpenAI-style chat export with no label: two user turns per conversation, each
    answered, under a system prompt, as gateways log them."""
    rng = random.Random(0)
    lines = []
    for c in range(conversations):
        messages = [{"role": "system", "content": "You are the Zebulon Freight help desk."}]
        for t in range(2):
            i = 2 * c + t
            words = [rng.choice(TOPICS[list(TOPICS)[i % 3]].split()) for _ in range(5)]
            messages.append({"role": "user", "content": f"{' '.join(words)} case {i}"})
            messages.append({"role": "assistant", "content": "done"})
        lines.append(json.dumps({"id": f"conv-{c}", "messages": messages}) + "\n")
    path = root / "data" / "raw" / "chat.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return path


def project(root: Path, logs: Path) -> None:
    """params.yaml of the real config, reading `logs`; MLflow in root/mlflow.db."""
    cfg = compose(TINY)
    cfg.data.path = str(logs)
    (root / "params.yaml").write_text(to_yaml(cfg), encoding="utf-8")


def stage(root: Path, *args: str) -> int:
    return main([*args, "--root", str(root)])


def client(root: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def champion(mlflow) -> str | None:
    """The champion's version, or None when no model holds the alias."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.get_model_version_by_alias("prompt-classifier", "champion").version
    except MlflowException:
        return None


def test_unlabelled_logs_skip_training_and_are_still_searchable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, write_chat_export(tmp_path, 20))  # 20 conversations, 40 turns
    assert stage(tmp_path, "dedup") == 0
    dedup = json.loads((tmp_path / "reports/dedup.json").read_text())
    assert dedup["shapes"]["chat"] == {"rows": 20, "records": 40}
    assert dedup["kept"] == 40
    assert stage(tmp_path, "train") == 0
    assert stage(tmp_path, "evaluate") == 0
    out = capsys.readouterr()
    assert "train: skipped (no labelled records)" in out.err
    assert "none of the 40 records has a 'label' value" in out.err

    train = read_report(tmp_path / "reports", "train.json")  # with its run id beside it
    assert train["status"] == "skipped" and train["reason"] == "no labelled records"
    assert train["records"] == {"labelled": 0, "unlabelled": 40, "train": 0, "val": 0, "test": 0}
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["meta.json"]
    metrics = json.loads((tmp_path / "reports/metrics.json").read_text())
    assert metrics["status"] == "skipped" and metrics["reason"] == "no labelled records"
    assert metrics["n_unlabelled"] == 40 and metrics["n_test"] == 0
    # DVC's outs and declared plots exist (header only), so `dvc repro` can cache them.
    for name, header in (("confusion.csv", "actual"), ("calibration.csv", "confidence")):
        with (tmp_path / "reports/eval" / name).open() as fh:
            rows = list(csv.reader(fh))
        assert rows[0][0] == header and len(rows) == 1

    mlflow = client(tmp_path)
    run = mlflow.get_run(train["mlflow_run_id"])
    assert run.data.tags["skipped"] == "true" and run.data.tags["evaluated"] == "skipped"
    assert run.data.tags["skip_reason"] == "no labelled records"
    assert run.data.metrics["records.unlabelled"] == 40.0
    assert mlflow.search_registered_models() == []  # nothing registered, no champion

    assert stage(tmp_path, "index", "build") == 0
    capsys.readouterr()
    assert stage(tmp_path, "search", "passport and luggage at the airport", "-k", "3") == 0
    assert "case" in capsys.readouterr().out  # a log record's text came back
    # The system prompt is searchable by keyword, and a turn shows its conversation.
    assert stage(tmp_path, "search", "zebulon", "--mode", "keyword", "--json") == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    assert len(hits) == 10 and all(h["session_id"].startswith("conv-") for h in hits)
    assert stage(tmp_path, "records", "show", hits[0]["id"], "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown["neighbours"]["previous"]) + len(shown["neighbours"]["next"]) == 1
    assert stage(tmp_path, "summary") == 0
    summary = capsys.readouterr().out
    assert "train: SKIPPED, no labelled records (0 labelled, 40 unlabelled" in summary
    assert "SKIPPED, no labelled records: no model to test; the champion is unchanged" in summary


def test_partly_labelled_logs_train_on_the_labelled_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = write_logs(tmp_path, 90, labelled=60)
    project(tmp_path, logs)
    assert stage(tmp_path, "dedup") == 0
    assert stage(tmp_path, "train") == 0
    assert "train: 30 of 90 records have no 'label' value; training on the 60" in (
        capsys.readouterr().err
    )
    assert stage(tmp_path, "evaluate") == 0

    import pandas as pd

    train = read_report(tmp_path / "reports", "train.json")  # with its run id beside it
    assert train["status"] == "trained"
    counts = train["records"]
    assert (counts["labelled"], counts["unlabelled"]) == (60, 30)
    assert counts["train"] + counts["val"] + counts["test"] == 60
    split = pd.read_parquet(tmp_path / "models/split.parquet")
    assert len(split) == 60 and split["label"].notna().all()
    assert set(split["id"]) == {f"log-{i}" for i in range(60)}
    metrics = json.loads((tmp_path / "reports/metrics.json").read_text())
    assert metrics["n_test"] == counts["test"] and metrics["n_train"] == counts["train"]
    run = client(tmp_path).get_run(train["mlflow_run_id"])
    assert run.data.metrics["records.unlabelled"] == 30.0
    assert run.data.metrics["records.labelled"] == 60.0
    assert stage(tmp_path, "summary") == 0
    assert "30 unlabelled not used" in capsys.readouterr().out

    # The labels disappear from the next export: training is skipped, the registry stays.
    mlflow = client(tmp_path)
    before = (champion(mlflow), len(mlflow.search_model_versions("name='prompt-classifier'")))
    assert before[1] == int(metrics["champion"]["promoted"])  # versions: promoted models only
    logs.write_text(
        "".join(
            json.dumps({k: v for k, v in json.loads(line).items() if k != "label"}) + "\n"
            for line in logs.read_text().splitlines()
        )
    )
    assert stage(tmp_path, "dedup") == 0
    assert stage(tmp_path, "train") == 0
    assert stage(tmp_path, "evaluate") == 0
    assert json.loads((tmp_path / "reports/metrics.json").read_text())["status"] == "skipped"
    after = (champion(mlflow), len(mlflow.search_model_versions("name='prompt-classifier'")))
    assert after == before
