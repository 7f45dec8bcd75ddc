"""The stage report (reports/dedup.json), its accounting equation, and the MLflow run."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.tracking import (
    CURATION_RUNS,
    DESCRIPTION,
    TIME,
    TrackingSettings,
    experiment_id,
    flatten_metrics,
    flatten_params,
)

# Report keys from before the steps were plug-ins: the summary line, tests, benchmarks and
# `dvc metrics diff` against older commits read them. A new step is counted under
# `steps.<name>` only.
LEGACY_KEYS = {"exact": "exact_duplicates", "near": "near_duplicates"}


def curation(
    counts: Any, results: Sequence[Any], rated: int, filtered: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The counts of the report: intake (`IntakeCounts`), each step in order (`StepResult`),
    what the filter steps dropped (`filtered`: total, by_filter, by_step), what is kept, and
    the accounting equation built from the steps; `rated` records had feedback."""
    steps = {
        r.name: {"input": r.input, "dropped": r.dropped, "kept": r.input - r.dropped,
                 "by_reason": r.by_reason, **r.counts}
        for r in results
    }  # fmt: skip
    out: dict[str, Any] = {
        "input_records": counts.input_records,
        "rejected": by_reason(counts.rejected),
        "erased": counts.erased,
        "steps": steps,
        **{key: steps.get(name, {}).get("dropped", 0) for name, key in LEGACY_KEYS.items()},
        "kept": counts.staged - sum(step["dropped"] for step in steps.values()),
        "filtered": dict(filtered or {"total": 0, "by_filter": {}, "by_step": {}}),
        "feedback": {"records_rated": rated, "quality_from_feedback": counts.from_feedback},
        "preferences": counts.preferences,
        "pii": {"total": sum(counts.pii.values()), "by_type": dict(sorted(counts.pii.items()))},
        "secrets": {
            "total": sum(counts.secrets.values()),
            "by_type": dict(sorted(counts.secrets.items())),
        },
        # Input rows and the candidate records they became (a conversation: one per turn),
        # by the shape each row was read as; the records sum to input_records.
        "shapes": {
            shape: {"rows": counts.rows_by_shape[shape], "records": counts.records_by_shape[shape]}
            for shape in sorted(counts.rows_by_shape)
        },
    }
    out["accounting"] = accounting(out)
    return out


def accounting(report: Mapping[str, Any]) -> dict[str, Any]:
    """input_records = kept + what each dedup step dropped + filtered + rejected + erased,
    with its figures; the terms come from the report's steps, in the order they ran, and the
    filter steps' drops are one term, `filtered.total`."""
    filters = (report.get("filtered") or {}).get("by_step", {})
    dedup = [f"steps.{name}.dropped" for name in report["steps"] if name not in filters]
    terms = ["kept", *dedup, *(["filtered.total"] if "filtered" in report else []),
             "rejected.total", "erased"]  # fmt: skip
    total = sum(_get(report, term) for term in terms)
    out = {
        "equation": "input_records = " + " + ".join(terms),
        "input_records": report["input_records"],
        "sum": total,
        "holds": total == report["input_records"],
    }
    if "shapes" in report:  # and the records by shape add up to the same input
        by_shape = sum(int(s["records"]) for s in report["shapes"].values())
        out["records_by_shape"] = by_shape
        out["holds"] = out["holds"] and by_shape == report["input_records"]
    return out


def _get(report: Mapping[str, Any], dotted: str) -> int:
    node: Any = report
    for part in dotted.split("."):
        node = node[part]
    return int(node)


def by_reason(counts: Mapping[str, int]) -> dict[str, Any]:
    """Rejected counts: total and by reason code."""
    return {"total": sum(counts.values()), "by_reason": dict(sorted(counts.items()))}


def log_mlflow(
    report: Mapping[str, Any],
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    tracking: TrackingSettings,
    root: Path,
) -> str:
    """Log the report's figures, the stage's params and lineage tags as a run of the curation
    experiment, spanning the stage's real start and end; return the run id."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    uri, artifacts = tracking.resolved_uri(root), tracking.artifact_location(root)
    client = MlflowClient(tracking_uri=uri)
    experiment = experiment_id(client, tracking.curation_experiment, artifacts, CURATION_RUNS)
    end = int(time.time() * 1000)
    start = end - int(1000 * float(report.get("seconds", {}).get("total", 0.0)))
    note = (
        f"dedup of {report.get('dataset', '?')} (data {str(tags.get('data_hash', ''))[:12]}): "
        f"{report.get('input_records', 0)} records in, {report.get('kept', 0)} kept"
    )
    run = client.create_run(
        experiment, start_time=start, run_name="dedup", tags={**tags, DESCRIPTION: note}
    )
    run_id = run.info.run_id
    metrics = [Metric(k, v, end, 0) for k, v in sorted(dedup_metrics(report).items())]
    param_list = [Param(k, v) for k, v in sorted(flatten_params(params).items())]
    client.log_batch(run_id, metrics=metrics, params=param_list)
    client.log_dict(run_id, dict(report), "dedup.json")
    client.set_terminated(run_id, end_time=end)
    return run_id


def dedup_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The report's counts as metrics, its step durations (`seconds.*`) under `time.*`."""
    out = {}
    for name, value in flatten_metrics(report).items():
        if name.startswith("seconds."):
            name = f"{TIME}{name.removeprefix('seconds.')}_seconds"
        out[name] = value
    return out
