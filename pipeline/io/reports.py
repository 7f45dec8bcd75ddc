"""Stage reports: the metric file DVC tracks and git keeps, and this run's volatile facts.

`reports/<stage>.json` holds what means quality or counts, so it is byte-identical when
nothing changed and `dvc metrics diff` shows only real changes. What differs on every run
(timings, run ids, hashes) goes to `reports/run/<stage>.json`, which is neither a DVC metric
nor in git; `read_report` puts the two back together for `pipeline summary`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.io.atomic import write_json

RUN_DIR = "run"
# Per metric file, the top-level keys that change from run to run on the same inputs.
VOLATILE: dict[str, tuple[str, ...]] = {
    "dedup.json": ("seconds", "data_hash"),
    "train.json": (
        *("fit_seconds", "seconds", "step_seconds", "train_samples_per_s"),
        *("mlflow_run_id", "pipeline_run"),
    ),
    "metrics.json": ("timing",),
    "predictions.json": ("seconds",),
    "index.json": ("build_seconds", "embed_seconds", "data_hash"),
    "anomaly.json": (
        *("seconds", "embed_seconds", "fit_seconds"),
        *("mlflow_run_id", "pipeline_run", "data_hash"),
    ),
    "retrieval.json": ("latency_ms", "seconds", "mlflow_run_id"),
}


def split_report(name: str, report: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the metric file's content, this run's volatile facts) of report `name`."""
    volatile = VOLATILE.get(name, ())
    stable = {k: v for k, v in report.items() if k not in volatile}
    return stable, {k: report[k] for k in volatile if k in report}


def write_report(reports: Path, name: str, report: Mapping[str, Any]) -> None:
    """Write `reports/<name>` (the metric file) and `reports/run/<name>` (the rest)."""
    stable, facts = split_report(name, report)
    write_json(reports / RUN_DIR / name, facts)
    write_json(reports / name, stable)


def read_report(reports: Path, name: str) -> dict[str, Any] | None:
    """The report as the stage returned it (metric file + volatile facts); None if absent."""
    path = reports / name
    if not path.exists():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    facts = reports / RUN_DIR / name
    if facts.exists():
        report.update(json.loads(facts.read_text(encoding="utf-8")))
    return report
