"""Run a sweep: Optuna proposes train configs, each trial is a fit tracked as an MLflow run.

A trial is the train stage's split and fit (pipeline/stages/train.py, pipeline/train/fit.py)
in this process, scored on the validation split; it publishes nothing to models/ or reports/,
which belong to `dvc repro`. The sweep has its own MLflow run; each trial's run is its child
(`mlflow.parentRunId`) and carries the tags `sweep_id` and `sweep_trial`, so the MLflow UI
nests them and `pipeline_run` (the sweep id) finds them together. Imports torch through the
train code: the command imports this module only when it runs.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from pipeline.config import load_params
from pipeline.errors import UserInputError
from pipeline.stages.train import TrainStageSettings, split_records
from pipeline.sweep.space import SweepSettings
from pipeline.tracking import git_commit
from pipeline.train.tracking import Lineage, file_md5

PARENT_TAG = "mlflow.parentRunId"  # what the MLflow UI nests runs by


@dataclass
class SweepResult:
    """What a sweep found: the best trial and every trial, for `--json` and the table."""

    sweep_id: str
    run_id: str
    metric: str
    direction: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The JSON report."""
        return {
            "sweep_id": self.sweep_id,
            "mlflow_run_id": self.run_id,
            "metric": self.metric,
            "direction": self.direction,
            "best": self.best,
            "trials": self.trials,
            "seconds": round(self.seconds, 3),
        }


def run_sweep(
    params: Path,
    overrides: Sequence[str],
    root: Path,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Search `sweep.params` over the config of `params` + `overrides`; report each trial."""
    started = time.perf_counter()
    base = load_params(params, overrides)
    settings = SweepSettings.from_cfg(_section(base, "sweep"))
    _refuse_multiprocess(base)
    load_params(params, [*overrides, *settings.overrides(settings.corner())])  # keys exist
    stage = TrainStageSettings.from_cfg(base, root)
    frame, _ = split_records(stage)  # input errors surface before the sweep's run exists
    sweep_id = f"sweep-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    client = MlflowClient(tracking_uri=stage.fit.tracking_uri)
    run_id = _start_parent(client, stage, settings, sweep_id)
    result = SweepResult(sweep_id, run_id, settings.metric, settings.direction)
    lineage = Lineage(stage.records, file_md5(stage.records), git_commit(root), sweep_id, {})

    def objective(trial: optuna.Trial) -> float:
        point = {d.key: d.suggest(trial) for d in settings.space}
        cfg = load_params(params, [*overrides, *settings.overrides(point)])
        row = _trial(cfg, root, frame, stage, lineage, settings.metric)
        _tag_child(client, row["run_id"], run_id, sweep_id, trial.number)
        client.log_metric(run_id, f"trial_{settings.metric}", row["value"], step=trial.number)
        trial.set_user_attr("run_id", row["run_id"])
        result.trials.append({"number": trial.number, "params": point, **row})
        if progress:
            progress(result.trials[-1])
        return float(row["value"])

    sampler = optuna.samplers.TPESampler(seed=settings.seed)
    study = optuna.create_study(direction=settings.direction, sampler=sampler)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the command prints each trial
    status = "FAILED"
    try:
        study.optimize(objective, settings.n_trials, timeout=settings.timeout_seconds)
        best = study.best_trial
        result.best = {
            "number": best.number,
            "value": best.value,
            "params": best.params,
            "run_id": best.user_attrs.get("run_id"),
        }
        status = "FINISHED"
    finally:
        result.seconds = time.perf_counter() - started
        _finish_parent(client, run_id, result, status)
    return result


def _section(cfg: Any, key: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    node = OmegaConf.select(cfg, key)
    if node is None:
        raise UserInputError(
            f"config key {key!r} is missing: add `- {key}: default` to conf/config.yaml's "
            "defaults and run `make params`"
        )
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def _refuse_multiprocess(cfg: Any) -> None:
    """Trials train in this process: DDP would re-launch `pipeline sweep` on every rank."""
    trainer = _section(cfg, "trainer")
    devices, strategy = trainer.get("devices", 1), trainer.get("strategy", "auto")
    if str(strategy) != "auto" or devices not in (1, "1", "auto"):
        raise UserInputError(
            f"sweep: trials train in one process; trainer.devices={devices!r}, "
            f"trainer.strategy={strategy!r} asks for several (use -S trainer=cpu)"
        )


def _trial(
    cfg: Any, root: Path, frame: Any, base: TrainStageSettings, lineage: Lineage, metric: str
) -> dict[str, Any]:
    """One fit of `cfg` on the sweep's split; its MLflow run id, metric value and seconds."""
    from omegaconf import OmegaConf

    from pipeline.train.fit import train_model  # imports Lightning

    stage = TrainStageSettings.from_cfg(cfg, root)
    if stage.split != base.split or stage.data != base.data:
        # Every trial is scored on the same validation rows, or the values do not compare.
        raise UserInputError("sweep.params: the split and data sections cannot be swept")
    trial_lineage = Lineage(
        lineage.records_path, lineage.data_hash, lineage.git_commit, lineage.pipeline_run,
        OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
    )  # fmt: skip
    clock = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".sweep-", dir=root) as work:
        fit = train_model(stage.fit, frame, Path(work), trial_lineage)
    if metric not in fit.best:
        known = ", ".join(sorted(fit.best)) or "none"
        raise UserInputError(f"sweep.metric {metric!r} is not a fit metric (known: {known})")
    return {
        "value": fit.best[metric],
        "run_id": fit.run_id,
        "epochs": fit.epochs,
        "seconds": round(time.perf_counter() - clock, 3),
    }


def _start_parent(
    client: MlflowClient, stage: TrainStageSettings, settings: SweepSettings, sweep_id: str
) -> str:
    """The sweep's own MLflow run, in the train runs' experiment; its id."""
    from pipeline.tracking import MODEL_RUNS
    from pipeline.tracking import experiment_id as experiment_id_of

    experiment_id = experiment_id_of(
        client, stage.fit.tracking.experiment, stage.fit.artifact_location, MODEL_RUNS
    )
    tags = {"stage": "sweep", "sweep_id": sweep_id, "pipeline_run": sweep_id}
    run = client.create_run(experiment_id, run_name=sweep_id, tags=tags)
    space = {f"space.{d.key}": _describe(d) for d in settings.space}
    fixed = {"n_trials": settings.n_trials, "direction": settings.direction,
             "metric": settings.metric, "seed": settings.seed}  # fmt: skip
    client.log_batch(
        run.info.run_id,
        params=[Param(k, str(v)[:500]) for k, v in sorted({**fixed, **space}.items())],
    )
    return run.info.run_id


def _describe(d: Any) -> str:
    if d.choices:
        return json.dumps(list(d.choices))
    return (
        f"[{d.low}, {d.high}]" + (" log" if d.log else "") + (f" step {d.step}" if d.step else "")
    )


def _tag_child(client: MlflowClient, child: str, parent: str, sweep_id: str, number: int) -> None:
    """Nest a trial's run under the sweep's run; a parent it already has is kept."""
    tags = client.get_run(child).data.tags
    new = {"sweep_id": sweep_id, "sweep_trial": str(number)}
    if PARENT_TAG not in tags:
        new[PARENT_TAG] = parent
    client.log_batch(child, tags=[RunTag(k, v) for k, v in new.items()])


def _finish_parent(client: MlflowClient, run_id: str, result: SweepResult, status: str) -> None:
    """The best value and trial on the sweep's run, the trial table as an artifact; end it."""
    now = int(time.time() * 1000)
    if result.best:
        client.log_batch(
            run_id,
            metrics=[Metric(f"best_{result.metric}", result.best["value"], now, 0)],
            tags=[RunTag("best_run_id", str(result.best["run_id"])),
                  RunTag("best_trial", str(result.best["number"]))],
        )  # fmt: skip
    client.log_dict(run_id, result.as_dict(), "sweep.json")
    client.set_terminated(run_id, status=status)
