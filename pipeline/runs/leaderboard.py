"""`pipeline runs`: the model runs ranked by test macro-F1, as rows and as a table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pipeline.runs.store import Store

# row key -> the run's metric (first one present: runs logged before issue 11 used others)
METRICS = {
    "macro_f1": ("test.macro_f1",),
    "baseline_macro_f1": ("test.baseline_macro_f1",),
    "ece": ("test.ece",),
    "accuracy": ("test.accuracy",),
    "val_macro_f1": ("val_macro_f1", "best_val_macro_f1"),
    "best_epoch": ("best_epoch",),
    "train_seconds": ("time.fit_seconds",),
}


def row(run: Any, champion: str | None) -> dict[str, Any]:
    """One leaderboard row: scores, lineage and whether the run's model is the champion."""
    metrics, tags = run.data.metrics, run.data.tags
    out: dict[str, Any] = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "model": tags.get("model") or run.data.params.get("model.name"),
    }
    for key, names in METRICS.items():
        out[key] = next((metrics[n] for n in names if n in metrics), None)
    started = datetime.fromtimestamp(run.info.start_time / 1000, UTC)
    out.update(
        data_hash=tags.get("data_hash"),
        git_commit=tags.get("git_commit"),
        pipeline_run=tags.get("pipeline_run"),
        started=started.isoformat(timespec="seconds"),
        champion=run.info.run_id == champion,
    )
    return out


def leaderboard(
    store: Store, data_hash: str | None = None, model: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The model runs, best test macro-F1 first (unevaluated runs last, newest first)."""
    champion = store.champion_run()
    rows = [row(run, champion) for run in store.model_runs()]
    if data_hash:
        rows = [r for r in rows if (r["data_hash"] or "").startswith(data_hash)]
    if model:
        rows = [r for r in rows if r["model"] == model]
    # model_runs() is newest first and the sort is stable: ties keep the newest on top.
    rows.sort(key=lambda r: (r["macro_f1"] is None, -(r["macro_f1"] or 0.0)))
    return rows[:limit] if limit else rows


COLUMNS = (  # header, width, row key, format
    ("run", 8, "run_id", "s"),
    ("model", 14, "model", "s"),
    ("test F1", 7, "macro_f1", ".3f"),
    ("baseline", 8, "baseline_macro_f1", ".3f"),
    ("vs base", 7, "delta", "+.3f"),
    ("ECE", 5, "ece", ".3f"),
    ("val F1", 6, "val_macro_f1", ".3f"),
    ("train s", 7, "train_seconds", ".1f"),
    ("data", 8, "data_hash", "s"),
    ("started (UTC)", 16, "started", "s"),
    ("champion", 8, "champion", "s"),
)


def _cell(value: Any, width: int, fmt: str) -> str:
    if value is None or value is False:
        text = "-" if value is None else ""
    elif value is True:
        text = "yes"
    elif fmt == "s":
        text = str(value).replace("T", " ")[:width]
    else:
        text = format(value, fmt)
    return text.ljust(width) if fmt == "s" else text.rjust(width)


def format_table(rows: Sequence[dict[str, Any]], where: str) -> str:
    """The leaderboard for a terminal: one line per run, at most 120 columns."""
    if not rows:
        return f"no model runs in {where}: run the pipeline (`make run`) first"
    lines = ["  ".join(h.ljust(w) if f == "s" else h.rjust(w) for h, w, _, f in COLUMNS)]
    for r in rows:
        base, f1 = r["baseline_macro_f1"], r["macro_f1"]
        values = {**r, "delta": None if base is None or f1 is None else f1 - base}
        lines.append("  ".join(_cell(values[k], w, f) for _, w, k, f in COLUMNS).rstrip())
    lines.append(
        "test F1 / baseline: test macro-F1 of the model / of TF-IDF + LR on the same split"
    )
    return "\n".join(lines)
