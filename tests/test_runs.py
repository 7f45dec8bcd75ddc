"""`pipeline runs` and `pipeline runs compare` through the real CLI, on a real MLflow store
filled by the real train and evaluate stages (two tiny TextCNN runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_evaluate_stage import OVERRIDES, VOCAB, _write_records

pytestmark = pytest.mark.slow

LAYOUT = ("epoch.", "test.", "time.", "val_", "best_epoch", "records.")  # a model run's metrics


def cli(root: Path, *args: str, code: int = 0) -> str:
    """Run `python -m pipeline ARGS --root root`; check the exit code; return stdout."""
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", *args, "--root", str(root)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == code, out.stderr
    return out.stdout if code == 0 else out.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A project with params.yaml and two trained and evaluated runs (8 and 4 channels)."""
    from omegaconf import OmegaConf

    from pipeline.config import compose
    from pipeline.stages import evaluate, train

    root = tmp_path_factory.mktemp("runs")
    _write_records(root)
    run_ids = []
    for channels in (8, 4):
        cfg = compose([*OVERRIDES, f"model.net.channels={channels}"])
        run_ids.append(train.run(cfg, root)["mlflow_run_id"])
        evaluate.run(cfg, root)
    (root / "params.yaml").write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")
    return root, run_ids


def test_leaderboard_ranks_filters_and_marks_the_champion(project) -> None:
    from mlflow import MlflowClient

    root, run_ids = project
    rows = json.loads(cli(root, "runs", "--json"))
    assert sorted(r["run_id"] for r in rows) == sorted(run_ids)
    assert rows[0]["macro_f1"] >= rows[1]["macro_f1"]
    meta = json.loads((root / "models/meta.json").read_text())
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    if not client.search_registered_models():  # the gate promoted neither tiny model
        assert not [r for r in rows if r["champion"]]
        # Promote the second run by hand, as `mlflow` users do, to see the mark follow it.
        client.create_registered_model("prompt-classifier")
        source = f"runs:/{run_ids[1]}/model"
        version = client.create_model_version("prompt-classifier", source, run_id=run_ids[1])
        client.set_registered_model_alias("prompt-classifier", "champion", version.version)
        rows = json.loads(cli(root, "runs", "--json"))
    champion = client.get_model_version_by_alias("prompt-classifier", "champion")
    assert [r["run_id"] for r in rows if r["champion"]] == [champion.run_id]
    metrics = json.loads((root / "reports/metrics.json").read_text())
    last = next(r for r in rows if r["run_id"] == run_ids[1])
    assert last["macro_f1"] == pytest.approx(metrics["macro_f1"])
    assert last["baseline_macro_f1"] == pytest.approx(metrics["baseline_macro_f1"])
    assert last["ece"] == pytest.approx(metrics["ece"])
    assert last["data_hash"] == meta["data_hash"] and last["model"] == "textcnn"
    assert last["train_seconds"] > 0 and last["val_macro_f1"] == meta["best_val_macro_f1"]

    prefix = meta["data_hash"][:6]
    assert len(json.loads(cli(root, "runs", "--json", "--data-hash", prefix))) == 2
    assert json.loads(cli(root, "runs", "--json", "--data-hash", "zz")) == []
    assert json.loads(cli(root, "runs", "--json", "--model", "bigru")) == []
    assert len(json.loads(cli(root, "runs", "--json", "--model", "textcnn", "--limit", "1"))) == 1

    table = cli(root, "runs").splitlines()
    assert all(len(line) <= 120 for line in table)
    assert table[0].split()[:3] == ["run", "model", "test"]
    assert table[1].startswith(rows[0]["run_id"][:8]) and "textcnn" in table[1]
    assert sum(line.rstrip().endswith("yes") for line in table) == 1


def test_compare_shows_params_metrics_and_both_confusion_matrices(project) -> None:
    root, (a, b) = project
    result = json.loads(cli(root, "runs", "compare", a[:8], b, "--json"))
    assert [r["run_id"] for r in result["runs"]] == [a, b]
    assert result["params_differ"] == {"model.net.channels": ["8", "4"]}
    assert set(result["metrics"]) >= {"test.macro_f1", "test.baseline_macro_f1", "val_macro_f1"}
    assert not [k for k in result["metrics"] if k.startswith("epoch.")]  # curves, not summaries
    n_test = json.loads((root / "reports/metrics.json").read_text())["n_test"]
    for confusion in result["confusion"]:
        assert confusion["labels"] == sorted(VOCAB)
        assert sum(map(sum, confusion["matrix"])) == n_test

    text = cli(root, "runs", "compare", a, b)
    assert "model.net.channels" in text
    assert "confusion matrix A" in text and "confusion matrix B" in text
    assert all(len(line) <= 120 for line in text.splitlines())


def test_unknown_runs_and_missing_stores_exit_3(project, tmp_path: Path) -> None:
    root, (a, _) = project
    assert "not a model run" in cli(root, "runs", "compare", a, "0" * 32, code=3)
    assert "not a model run" in cli(root, "runs", "compare", "nope", a, code=3)
    assert "no tracking store" in cli(tmp_path, "runs", code=3)
    assert not (tmp_path / "mlflow.db").exists()  # looking did not create an empty store


def test_model_runs_follow_the_layout(project) -> None:
    """Tags set once, metrics by kind (quality, curves, durations), constants as params."""
    from mlflow import MlflowClient

    root, run_ids = project
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    for run_id in run_ids:
        run = client.get_run(run_id)
        assert run.data.tags["stage"] == "train" and run.data.tags["evaluated"] == "true"
        assert "mlflow.note.content" in run.data.tags
        assert [k for k in run.data.metrics if not k.startswith(LAYOUT)] == []
        timings = [k for k in run.data.metrics if "seconds" in k or "per_s" in k]
        assert timings and all(k.startswith("time.") for k in timings)
        assert {"eval.n_test", "eval.onnx_opset"} <= set(run.data.params)
        artifacts = {a.path for a in client.list_artifacts(run_id, "eval")}
        assert "eval/confusion_matrix.json" in artifacts
        # Plots at the root: MLflow's compare page shows only the root files runs share.
        root_files = {a.path for a in client.list_artifacts(run_id) if not a.is_dir}
        assert {"confusion.png", "calibration.png"} <= root_files
        curve = [m.value for m in client.get_metric_history(run_id, "epoch.val_macro_f1")]
        assert run.data.metrics["val_macro_f1"] == max(curve)
        assert curve[int(run.data.metrics["best_epoch"])] == max(curve)
    experiment = client.get_experiment_by_name("prompt-pipeline")
    assert "mlflow.note.content" in experiment.tags


def test_runs_reads_the_store_without_torch_or_lightning(project) -> None:
    root, _ = project
    code = (
        "import sys, contextlib, io; from pipeline.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main(['runs', '--json', '--root', {str(root)!r}])\n"
        "print(code, [m for m in ('torch', 'pytorch_lightning') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0 []"
