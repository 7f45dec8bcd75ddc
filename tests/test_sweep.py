"""`pipeline sweep`: the search space of conf/sweep/, and three Optuna trials on the bundled
sample, each a child MLflow run of the sweep's run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from pipeline.config import REPO_ROOT, compose, load_plain
from pipeline.errors import UserInputError
from pipeline.sweep.space import SweepSettings

TINY = [
    *("model=textcnn", "model.net.embed_dim=16", "model.net.channels=8", "model.max_length=32"),
    *("trainer.max_epochs=1", "trainer.enable_progress_bar=false"),
]


def _sweep(**changes: object) -> dict:
    section = dict(yaml.safe_load((REPO_ROOT / "conf" / "sweep" / "default.yaml").read_text()))
    section.update(changes)
    return section


def test_the_default_space_reads_and_its_points_are_valid_overrides(tmp_path: Path) -> None:
    settings = SweepSettings.from_cfg(compose()["sweep"])
    assert settings.direction == "maximize" and settings.metric == "val_macro_f1"
    assert [d.key for d in settings.space] == [
        "optimizer.lr", "optimizer.weight_decay", "model.net.dropout"
    ]  # fmt: skip
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    point = {d.key: d.suggest(trial) for d in settings.space}
    assert 1e-4 <= point["optimizer.lr"] <= 1e-2
    params = tmp_path / "params.yaml"
    params.write_text((REPO_ROOT / "params.yaml").read_text())
    cfg = load_plain(params, settings.overrides(point))
    assert cfg["optimizer"]["lr"] == pytest.approx(point["optimizer.lr"])
    assert cfg["model"]["net"]["dropout"] == pytest.approx(point["model.net.dropout"])


def test_integer_ranges_and_group_choices() -> None:
    space = {"trainer": {"max_epochs": {"low": 1, "high": 3}}, "model": {"choices": ["a", "b"]}}
    settings = SweepSettings.from_cfg(_sweep(params=space))
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    point = {d.key: d.suggest(trial) for d in settings.space}
    assert isinstance(point["trainer.max_epochs"], int) and point["model"] in ("a", "b")
    assert settings.overrides({"trainer.max_epochs": 2, "model": "b"}) == [
        "trainer.max_epochs=2", "model=b"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"direction": "up"}, r"sweep.direction 'up': expected maximize or minimize"),
        ({"n_trials": 0}, r"sweep.n_trials: expected a whole number >= 1"),
        ({"params": {}}, r"sweep.params: the search space is empty"),
        ({"params": {"optimizer": {"lr": 0.1}}}, r"sweep.params.optimizer.lr: expected \{low"),
        ({"params": {"x": {"low": 2, "high": 1}}}, r"sweep.params.x: low \(2\) must be below"),
        ({"params": {"x": {"low": 0, "high": 1, "log": True}}}, r"log range needs low > 0"),
        ({"params": {"x": {"low": 0, "hi": 1}}}, r"sweep.params.x: expected \{low: L, high: H"),
        ({"params": {"x": {"choices": [], "low": 1}}}, r"sweep.params.x: a choice is"),
    ],
)
def test_bad_settings_name_the_key(changes: dict, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        SweepSettings.from_cfg(_sweep(**changes))


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)  # fmt: skip


@pytest.fixture(scope="module")
def sample_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample deduplicated in a project of its own (data/dedup/records.parquet)."""
    root = tmp_path_factory.mktemp("sweep")
    shutil.copytree(REPO_ROOT / "data" / "raw", root / "data" / "raw")
    shutil.copy(REPO_ROOT / "params.yaml", root / "params.yaml")
    # Semantic dedup off: its encoder (an ONNX export, then ~3k texts) is not what a sweep
    # of textcnn models tests, and no stage here would reuse its cached vectors.
    done = _cli(["dedup", "-S", f"tracking.uri=sqlite:///{root}/mlflow.db",
                 "-S", "dedup.semantic.enabled=false"], root)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_a_space_key_that_does_not_exist_fails_before_training(sample_project: Path) -> None:
    space = "{optimizer: {lr_typo: {low: 0.001, high: 0.01}}}"
    done = _cli(["sweep", "-S", f"sweep.params={space}", *(f"-S{o}" for o in TINY)],
                sample_project)  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "config key 'optimizer.lr_typo' does not exist" in done.stderr
    assert "Trainer.fit" not in done.stderr


@pytest.mark.slow
def test_three_trials_on_the_sample_are_child_runs_of_the_sweep(sample_project: Path) -> None:
    from mlflow.tracking import MlflowClient

    db = sample_project / "sweep.db"
    args = ["sweep", "--json", "-S", "sweep.n_trials=3", "-S", f"tracking.uri=sqlite:///{db}"]
    done = _cli([*args, *(f"-S{o}" for o in TINY)], sample_project)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    trials = report["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert all(0.0 <= t["value"] <= 1.0 and t["epochs"] == 1 for t in trials)
    assert len({t["params"]["optimizer.lr"] for t in trials}) == 3  # Optuna proposed each
    assert report["best"]["value"] == max(t["value"] for t in trials)
    assert report["best"]["run_id"] in {t["run_id"] for t in trials}
    assert done.stderr.count("trial ") >= 3  # a progress line per trial

    client = MlflowClient(f"sqlite:///{db}")
    parent = client.get_run(report["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweep_id"] == report["sweep_id"]
    assert parent.data.metrics["best_val_macro_f1"] == pytest.approx(report["best"]["value"])
    assert parent.data.params["n_trials"] == "3"
    for trial in trials:
        run = client.get_run(trial["run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["sweep_trial"] == str(trial["number"])
        assert run.data.params["optimizer.lr"] == str(trial["params"]["optimizer.lr"])
        assert run.data.metrics["val_macro_f1"] == pytest.approx(trial["value"])
    # A sweep publishes nothing that `dvc repro` owns, and leaves no work directory.
    assert not (sample_project / "models").exists()
    assert not [p for p in sample_project.iterdir() if p.name.startswith(".sweep-")]
