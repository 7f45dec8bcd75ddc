"""The committed dvc.lock matches the committed code, data and params: `dvc status` on a copy
of HEAD finds nothing changed but the outputs a fresh clone does not have, so a pristine
clone's `dvc repro` re-runs nothing it need not. Fails until dvc.lock is regenerated
(`dvc repro`, then commit dvc.lock) after a change to what a stage depends on."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def _committed_tree(dest: Path) -> None:
    """HEAD's files (not the working tree's), without git: DVC is told there is no SCM."""
    archive = subprocess.run(
        ["git", "archive", "HEAD"], cwd=REPO, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    (dest / ".dvc" / "config.local").write_text("[core]\n    no_scm = true\n", encoding="utf-8")


def _stage_outputs(dvc_yaml: Path) -> set[str]:
    """Every path a stage produces (a fresh clone lacks them: 'deleted' there is expected)."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    found: set[str] = set()
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                found.add(next(iter(entry)) if isinstance(entry, dict) else str(entry))
    return found


def stale(status: dict, outputs: set[str]) -> list[str]:
    """What in `dvc status` says dvc.lock does not describe the committed tree."""
    problems = []
    for where, changes in status.items():
        stage = where.rpartition(":")[2]  # "<path>/dvc.yaml:<stage>" outside the cwd
        for change in changes:
            if not isinstance(change, dict):  # "changed checksum", "always changed", ...
                problems.append(f"{stage}: {change}")
                continue
            for kind, paths in change.items():
                if not isinstance(paths, dict):
                    problems.append(f"{stage}: {kind}")
                    continue
                for path, state in paths.items():
                    if kind == "changed outs":
                        # A fresh clone has no cached outputs (expected); the metric files
                        # in git must be the ones dvc.lock records.
                        if state == "modified":
                            problems.append(f"{stage}: {kind} {path} ({state})")
                        continue
                    produced = any(path == o or path.startswith(o + "/") for o in outputs)
                    if not (produced and state == "deleted"):
                        problems.append(f"{stage}: {kind} {path} ({state})")
    return problems


def test_stale_reads_dvc_status() -> None:
    outputs = {"data/dedup", "models"}
    fresh = {
        "train": [
            {"changed deps": {"data/dedup/records.parquet": "deleted"}},
            {"changed outs": {"models": "not in cache", "reports/train.json": "deleted"}},
        ]
    }
    assert stale(fresh, outputs) == []
    edited = {
        "../x/dvc.yaml:dedup": [
            {"changed deps": {"pipeline/dedup": "modified", "params.yaml": {"dedup.x": "new"}}},
            {"changed outs": {"reports/dedup.json": "modified"}},
            "changed command",
        ]
    }
    assert stale(edited, outputs) == [
        "dedup: changed deps pipeline/dedup (modified)",
        "dedup: changed deps params.yaml ({'dedup.x': 'new'})",
        "dedup: changed outs reports/dedup.json (modified)",
        "dedup: changed command",
    ]


@pytest.mark.slow  # DVC's import and hashing: ~10 s on 2 cores
def test_committed_dvc_lock_matches_the_committed_tree(tmp_path: Path) -> None:
    from dvc.repo import Repo

    _committed_tree(tmp_path)
    with Repo(str(tmp_path)) as repo:
        status = repo.status()
    problems = stale(status, _stage_outputs(tmp_path / "dvc.yaml"))
    assert not problems, (
        "dvc.lock does not match the committed code, data or params; run `dvc repro` and "
        "commit dvc.lock:\n  " + "\n  ".join(problems)
    )
