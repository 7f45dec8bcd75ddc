"""What every stage's MLflow run shares: the tracking store, the git commit, the pipeline-run
id, and the one way nested config and reports become flat MLflow params and metrics."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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
        """The URI with a relative sqlite path made absolute against the project: `root`, or
        `$DVC_ROOT` when DVC runs the stage (a queued `dvc exp run` works in a temporary copy
        of the repo and points DVC_ROOT at the original: its runs would vanish with the copy)."""
        if self.uri.startswith(_SQLITE) and not self.uri[len(_SQLITE) :].startswith("/"):
            project = Path(os.environ.get("DVC_ROOT") or root)
            return _SQLITE + str((project / self.uri[len(_SQLITE) :]).resolve())
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


def _leaves(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf; an empty mapping is a leaf."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, f"{name}.")
        else:
            yield name, value


def flatten_params(config: Mapping[str, Any]) -> dict[str, str]:
    """MLflow params: dotted keys, values as YAML flow text (`[3, 4, 5]`, `null`), 500 chars."""
    out: dict[str, str] = {}
    for name, value in _leaves(config):
        text = yaml.safe_dump(value, default_flow_style=True).strip()
        out[name] = text.removesuffix("\n...").removesuffix("...").strip()[:500]
    return out


def flatten_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """MLflow metrics: the numeric leaves of a report (booleans as 0/1), dotted keys."""
    return {
        name: float(value)
        for name, value in _leaves(report)
        if isinstance(value, int | float)  # bools too: `accounting.holds` is a useful metric
    }
