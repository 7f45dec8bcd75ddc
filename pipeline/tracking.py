"""Lineage shared by every stage's MLflow run: the git commit and the pipeline-run id."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError

_SQLITE = "sqlite:///"


@dataclass(frozen=True)
class TrackingSettings:
    """`tracking` of the config: where every stage's MLflow runs go."""

    uri: str = "sqlite:///mlflow.db"
    experiment: str = "prompt-pipeline"

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> TrackingSettings:
        missing = [key for key in ("uri", "experiment") if key not in cfg]
        if missing:
            raise UserInputError(f"config key 'tracking.{missing[0]}' is missing")
        return cls(str(cfg["uri"]), str(cfg["experiment"]))

    def resolved_uri(self, root: Path) -> str:
        """The URI with a relative sqlite path made absolute against `root` (the repo)."""
        if self.uri.startswith(_SQLITE) and not self.uri[len(_SQLITE) :].startswith("/"):
            return _SQLITE + str((root / self.uri[len(_SQLITE) :]).resolve())
        return self.uri

    def artifact_location(self, root: Path) -> str | None:
        """Artifacts in `mlruns/` beside a local sqlite store; a tracking server decides its own."""
        uri = self.resolved_uri(root)
        if uri.startswith(_SQLITE):
            return (Path(uri[len(_SQLITE) :]).parent / "mlruns").as_uri()
        return None


def git_commit(root: Path) -> str:
    """HEAD's commit (with -dirty when tracked files changed), or 'unknown' outside git."""
    try:
        run = {"cwd": root, "capture_output": True, "text": True, "check": True}
        head = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], **run).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def pipeline_run(commit: str, data_hash: str, params: Mapping[str, Any]) -> str:
    """One id per pipeline execution: $PIPELINE_RUN if set, else commit + data + params.

    `make run` sets PIPELINE_RUN once for the whole `dvc repro`, so the dedup, train and
    evaluate runs share the tag `pipeline_run` and are found together in MLflow.
    """
    explicit = os.environ.get("PIPELINE_RUN")
    if explicit:
        return explicit
    params_digest = hashlib.sha256(
        json.dumps(params, sort_keys=True, default=str).encode()
    ).hexdigest()
    key = f"{commit}:{data_hash}:{params_digest}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]
