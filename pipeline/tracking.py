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
CA_ENV = "MLFLOW_TRACKING_SERVER_CERT_PATH"  # the CA MLflow's client verifies the server with
_ENV = "env:"  # tracking=server: `env:MLFLOW_TRACKING_URI`, the URI is the environment's
DESCRIPTION = "mlflow.note.content"  # the tag MLflow shows as a run's or experiment's description
TIME = "time."  # every timing metric, so the quality charts are not mixed with durations
CURATION_SUFFIX = "-curation"  # dedup runs go to `<experiment>-curation` (docs/decisions/)
# Files the pipeline itself rewrites while it runs (dvc repro updates dvc.lock after each
# stage; metric files may be committed): they do not make the code a run used dirty.
WRITTEN_BY_PIPELINE = ("dvc.lock", "reports")


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
        of the repo and points DVC_ROOT at the original: its runs would vanish with the copy).
        `env:NAME` is the URI in $NAME (a team's server: conf/tracking/server.yaml)."""
        if self.uri.startswith(_ENV):
            name = self.uri[len(_ENV) :]
            value = os.environ.get(name, "").strip()
            if not value:
                raise UserInputError(
                    f"tracking.uri is {self.uri!r} but ${name} is not set: export the server's "
                    'URI and login (`eval "$(python -m pipeline.stack env)"`, docs/team.md)'
                )
            return _checked(value)
        if self.uri.startswith(_SQLITE) and not self.uri[len(_SQLITE) :].startswith("/"):
            project = Path(os.environ.get("DVC_ROOT") or root)
            return _SQLITE + str((project / self.uri[len(_SQLITE) :]).resolve())
        return _checked(self.uri)

    @property
    def curation_experiment(self) -> str:
        """The experiment of curation (dedup) runs, apart from the model runs' charts."""
        return self.experiment + CURATION_SUFFIX

    def artifact_location(self, root: Path) -> str | None:
        """Artifacts in `mlruns/` beside a local sqlite store; a tracking server decides its own."""
        uri = self.resolved_uri(root)
        if uri.startswith(_SQLITE):
            return (Path(uri[len(_SQLITE) :]).parent / "mlruns").as_uri()
        return None


def _checked(uri: str) -> str:
    """`uri`, once the CA MLflow's client verifies an https server against, when one is
    named, is a file: MLflow's client would otherwise retry, then fail deep in requests."""
    ca = os.environ.get(CA_ENV, "").strip()
    if uri.startswith("https://") and ca and not Path(ca).is_file():
        raise UserInputError(
            f"${CA_ENV} {ca}: no such file; the tracking server's CA certificate "
            "(`python -m pipeline.stack env` prints it, docs/team.md#tls)"
        )
    return uri


def git_commit(root: Path) -> str:
    """HEAD's commit (with -dirty when tracked files changed), or 'unknown' outside git.

    Files the pipeline writes itself (WRITTEN_BY_PIPELINE) are left out of the check: a
    `dvc repro` from a pristine clone rewrites dvc.lock before train starts.
    """
    excluded = [f":(exclude){path}" for path in WRITTEN_BY_PIPELINE]
    try:
        run = {"cwd": root, "capture_output": True, "text": True, "check": True}
        head = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        status = ["git", "status", "--porcelain", "-uno", "--", ".", *excluded]
        dirty = subprocess.run(status, **run).stdout.strip()
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


def experiment_id(client: Any, name: str, artifact_location: str | None, description: str) -> str:
    """The id of experiment `name`, created (with its description) if it does not exist."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if DESCRIPTION not in experiment.tags:
            client.set_experiment_tag(experiment.experiment_id, DESCRIPTION, description)
        return str(experiment.experiment_id)
    return str(
        client.create_experiment(
            name, artifact_location=artifact_location, tags={DESCRIPTION: description}
        )
    )


def set_new_tags(client: Any, run_id: str, tags: Mapping[str, str]) -> None:
    """Set the tags the run does not have yet: a tag, once set, is never overwritten."""
    existing = client.get_run(run_id).data.tags
    for key, value in tags.items():
        if key not in existing:
            client.set_tag(run_id, key, value)


def log_new_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    """Log the params the run does not have yet (MLflow refuses to change a param)."""
    existing = client.get_run(run_id).data.params
    for key, value in params.items():
        if key not in existing:
            client.log_param(run_id, key, value)


# Descriptions are rendered as Markdown: names go in backticks (`val_*` would be italics).
MODEL_RUNS = (
    "Model runs: one per train stage (tag `stage=train`), with per-epoch curves (`epoch.*`), "
    "the best epoch's `val_*` metrics, `test.*` metrics and `eval/` artifacts added by "
    "evaluate, and `time.*` durations. `pipeline runs` ranks them; curation runs are in the "
    "`-curation` experiment."
)
CURATION_RUNS = (
    "Curation runs: one per dedup stage (tag `stage=dedup`): record counts and the accounting "
    "equation as metrics, `time.*` durations, the `data` and `dedup` params; joined to model "
    "runs by the tags `data_hash` and `pipeline_run`."
)
