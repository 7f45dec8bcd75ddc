"""What every stage's run shares: the git commit it records (pipeline/tracking.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pipeline.tracking import git_commit


def _git(root: Path, *args: str) -> str:
    run = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return run.stdout.strip()


def test_files_the_pipeline_writes_do_not_make_the_commit_dirty(tmp_path: Path) -> None:
    """`dvc repro` rewrites dvc.lock (and metric files) before train asks for the commit."""
    _git(tmp_path, "init", "-q")
    for name in ("dvc.lock", "reports/metrics.json", "pipeline.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("a\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    head = _git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "dvc.lock").write_text("b\n")
    (tmp_path / "reports/metrics.json").write_text("b\n")
    (tmp_path / "untracked.txt").write_text("new\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "pipeline.py").write_text("b\n")  # the code changed: that is dirty
    assert git_commit(tmp_path) == f"{head}-dirty"


def test_outside_git_the_commit_is_unknown(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == "unknown"
