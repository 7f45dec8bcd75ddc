"""The experiment workflow a user runs, on a copy of this repository and the bundled sample:
`dvc exp run` (Hydra composition), re-running only what a change touches, `dvc exp show`,
`dvc metrics diff` and `dvc plots diff`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXP_SHOW = (
    "dvc exp show --drop '.*' --keep "
    "'Experiment|model\\.name|macro_f1$|baseline_macro_f1|ece$|champion\\.promoted'"
)


def _sh(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, (
        f"{' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    )
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh git repository holding this working tree's tracked and new (not ignored) files."""
    repo_root = Path(__file__).resolve().parent.parent
    work = tmp_path_factory.mktemp("dvc") / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for rel in listed:
        src = repo_root / rel
        if src.is_file():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, work / rel)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(
        # A process-wide URI naming another store (mlflow.set_tracking_uri exports it, so a
        # test run leaks it): the stages must use only the config's tracking.uri.
        MLFLOW_TRACKING_URI=f"sqlite:///{work.parent / 'elsewhere.db'}",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    _sh(["git", "init", "-q", "-b", "main"], work, env)
    _sh(["git", "add", "-A"], work, env)
    _sh(["git", "commit", "-qm", "copy"], work, env)
    return work, env


def test_experiments_rerun_only_what_changed_and_compare(workspace) -> None:
    work, env = workspace
    base = _sh(["dvc", "exp", "run", "-n", "base", "-S", "trainer.max_epochs=2"], work, env)
    for stage in ("dedup", "train", "evaluate", "index"):
        assert f"Running stage '{stage}'" in base
    # Hydra composed conf/ + the override into params.yaml.
    assert "max_epochs: 2" in (work / "params.yaml").read_text()

    # A training-only change re-runs train and evaluate, not dedup or index.
    cnn = _sh(
        ["dvc", "exp", "run", "-n", "cnn", "-S", "model=textcnn", "-S", "trainer.max_epochs=1"],
        work,
        env,
    )
    assert "Running stage 'train'" in cnn and "Running stage 'evaluate'" in cnn
    assert "Running stage 'dedup'" not in cnn and "Running stage 'index'" not in cnn

    shown = json.loads(_sh(["dvc", "exp", "show", "--json"], work, env))
    names = {exp.get("name") for rev in shown for exp in rev.get("experiments") or []}
    assert {"base", "cnn"} <= names

    # The README's leaderboard command is readable at 120 columns: nothing cut to `…`.
    readme = (work / "README.md").read_text(encoding="utf-8")
    assert EXP_SHOW in readme
    table = _sh(["sh", "-c", EXP_SHOW + " --no-pager"], work, {**env, "COLUMNS": "120"})
    assert "…" not in table and "[cnn]" in table and "baseline_macro_f1" in table, table
    assert max(len(line) for line in table.splitlines()) <= 120, table

    diff = json.loads(_sh(["dvc", "metrics", "diff", "base", "cnn", "--json"], work, env))
    assert "macro_f1" in diff["reports/metrics.json"]

    plots = _sh(["dvc", "plots", "diff", "base", "cnn", "-o", str(work / "plots")], work, env)
    assert (work / "plots" / "index.html").exists(), plots


def test_a_queued_grid_runs_each_combination_tracked_in_the_repo(workspace) -> None:
    """`dvc exp run --queue -S key=a,b` queues one experiment per value; `dvc queue start`
    runs them in temporary copies, and their MLflow runs land in the repository's store."""
    from helpers.wait import wait_until
    from mlflow.tracking import MlflowClient

    work, env = workspace
    tiny = ["model=textcnn", "model.net.embed_dim=16", "model.net.channels=8",
            "model.max_length=32", "trainer.max_epochs=1"]  # fmt: skip
    sets = [arg for item in [*tiny, "optimizer.lr=0.001,0.003"] for arg in ("-S", item)]
    queued = _sh(["dvc", "exp", "run", "--queue", "evaluate", *sets], work, env)
    assert queued.count("Queued experiment") == 2, queued
    log = work.parent / "queue.log"
    try:
        with log.open("w") as out:  # the worker outlives the command: no pipe to wait on
            subprocess.run(["dvc", "queue", "start", "-j", "1"], cwd=work, env=env,
                           stdout=out, stderr=subprocess.STDOUT, check=True)  # fmt: skip

        last = [0.0]

        def settled() -> str:
            # `dvc queue status` costs seconds of CPU: ask at most every 10 s (2 shared cores).
            if time.monotonic() - last[0] < 10:
                return ""
            last[0] = time.monotonic()
            status = _sh(["dvc", "queue", "status"], work, env)
            busy = any(word in status for word in ("Queued", "Running", "1 active"))
            return "" if busy else status

        status = wait_until(settled, "the queued experiments to finish", timeout=1800)
    finally:
        subprocess.run(["dvc", "queue", "stop"], cwd=work, env=env, capture_output=True)
    assert status.count("Success") == 2, f"{status}\n{log.read_text()[-3000:]}"

    shown = json.loads(_sh(["dvc", "exp", "show", "--json"], work, env))
    results = {}
    for rev in shown:
        for exp in rev.get("experiments") or []:
            data = exp["revs"][0]["data"]
            params = data["params"]["params.yaml"]["data"]
            if params["model"]["name"] == "textcnn" and params["model"]["net"]["embed_dim"] == 16:
                metrics = data["metrics"]["reports/metrics.json"]["data"]
                results[params["optimizer"]["lr"]] = metrics["macro_f1"]
    assert sorted(results) == [0.001, 0.003] and all(0 <= f1 <= 1 for f1 in results.values())

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "params.`model.net.embed_dim` = '16'",
    )
    assert {run.data.params.get("optimizer.lr") for run in runs} == {"0.001", "0.003"}
