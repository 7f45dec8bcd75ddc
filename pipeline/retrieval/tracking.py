"""The retrieval stage's MLflow run: in the model runs' experiment, tagged `stage=retrieval`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.tracking import (
    DESCRIPTION,
    MODEL_RUNS,
    TIME,
    TrackingSettings,
    experiment_id,
    flatten_metrics,
    flatten_params,
    git_commit,
    pipeline_run,
)

STAGE = "retrieval"
_QUALITY = ("judged", "bootstrap")
_SECTIONS = ("search", "embed", "index", "retrieval", "rag")  # what the figures depend on


def log_run(cfg: Any, root: Path, report: Mapping[str, Any], search: Mapping[str, Any]) -> str:
    """One finished run: params (`search` as it ran, embed, index, retrieval), metrics,
    latencies."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    from omegaconf import OmegaConf

    tracking = TrackingSettings.from_cfg(cfg["tracking"])
    uri = tracking.resolved_uri(root)  # explicit: never the process-wide tracking URI
    client = MlflowClient(tracking_uri=uri)
    exp = experiment_id(client, tracking.experiment, tracking.artifact_location(root), MODEL_RUNS)
    config = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    description = (
        "Retrieval evaluation (pipeline/stages/retrieval.py): recall, MRR and nDCG per search "
        "variant on the judged queries and, separately, on the bootstrap set derived from "
        "the kept records. `time.latency_ms.*` are per-query latencies."
    )
    commit = git_commit(root)
    tags = {
        "stage": STAGE,
        "git_commit": commit,
        # The execution it belongs to (`make run` sets PIPELINE_RUN for every stage).
        "pipeline_run": pipeline_run(commit, "", config),
        DESCRIPTION: description,
    }
    run = client.create_run(exp, run_name=STAGE, tags=tags)
    run_id = run.info.run_id
    sections = {key: config[key] for key in _SECTIONS if key in config} | {"search": search}
    params = [Param(key, str(value)) for key, value in flatten_params(sections).items()]
    quality = flatten_metrics({k: report[k] for k in _QUALITY})
    timings = flatten_metrics({"latency_ms": report["latency_ms"], "seconds": report["seconds"]})
    stamp = int(time.time() * 1000)
    metrics = [Metric(key.replace("@", "_at_"), v, stamp, 0) for key, v in quality.items()]
    metrics += [Metric(f"{TIME}{key}", v, stamp, 0) for key, v in timings.items()]
    # One call per kind: a sqlite store commits each call, and there are ~100 of them.
    client.log_batch(run_id, metrics=metrics, params=params)
    client.set_terminated(run_id, "FINISHED")
    return run_id
