"""Per-window monitor reports over the prediction log: label drift, embedding drift, mean
confidence and live accuracy, each window judged against conf/monitor thresholds.

Windows are aligned to multiples of their length since the epoch, so two reports over the
same log agree on where windows start whatever `--since` is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.monitor import drift
from pipeline.monitor.reference import Reference
from pipeline.monitor.settings import MonitorSettings, parse_duration
from pipeline.store import predictions as sql
from pipeline.store import service as db

OK, DRIFT, TOO_FEW, EMPTY = "ok", "drift", "too_few", "empty"


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat()


def judge_window(rows: pa.Table, reference: Reference, settings: MonitorSettings) -> dict:
    """One window's statistics and verdict (`status`: ok, drift or too_few; `reasons`)."""
    n = rows.num_rows
    labels = rows["label"].to_pylist()
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    confidence = np.asarray(rows["confidence"].to_numpy(zero_copy_only=False), dtype=np.float64)
    latency = np.asarray(rows["latency_ms"].to_numpy(zero_copy_only=False), dtype=np.float64)
    truth = rows["true_label"].to_pylist()
    judged = [(p, t) for p, t in zip(labels, truth, strict=True) if t is not None]
    models: dict[str, int] = {}
    for name, version in zip(
        rows["model_name"].to_pylist(), rows["model_version"].to_pylist(), strict=True
    ):
        models[f"{name}/{version}"] = models.get(f"{name}/{version}", 0) + 1
    psi = drift.psi(reference.label_counts, counts)
    chi2, chi2_p = drift.chi_square(reference.label_counts, counts)
    report: dict[str, Any] = {
        "predictions": n,
        "models": models,
        "labels": dict(sorted(counts.items())),
        "label_psi": psi,
        "label_chi2": chi2,
        "label_chi2_p": chi2_p,
        "embedding": _embedding_drift(rows, reference, settings),
        "mean_confidence": float(confidence.mean()),
        "latency_ms": {
            "p50": float(np.percentile(latency, 50)),
            "p95": float(np.percentile(latency, 95)),
        },
        "feedback": len(judged),
        "live_accuracy": (sum(p == t for p, t in judged) / len(judged)) if judged else None,
    }
    reasons = []
    if psi > settings.label_psi_max:
        reasons.append(f"label PSI {psi:.3f} > {settings.label_psi_max}")
    emb = report["embedding"]
    if emb is not None and emb["p_value"] < settings.embedding_p_value:
        reasons.append(f"embedding MMD p-value {emb['p_value']:.4f} < {settings.embedding_p_value}")
    if report["mean_confidence"] < settings.confidence_min:
        reasons.append(
            f"mean confidence {report['mean_confidence']:.3f} < {settings.confidence_min}"
        )
    accuracy = report["live_accuracy"]
    if accuracy is not None and accuracy < settings.accuracy_min:
        reasons.append(f"live accuracy {accuracy:.3f} < {settings.accuracy_min}")
    if n < settings.min_predictions:
        report.update(
            status=TOO_FEW,
            reasons=[f"{n} predictions < monitor.min_predictions {settings.min_predictions}"],
        )
    else:
        report.update(status=DRIFT if reasons else OK, reasons=reasons)
    return report


def _embedding_drift(
    rows: pa.Table, reference: Reference, settings: MonitorSettings
) -> dict | None:
    logged = [v for v in rows["embedding"].to_pylist() if v is not None]
    if len(logged) < 2 or len(reference.embeddings) < 2:
        return None  # no encoder in the service, or no reference vectors
    window = drift.subsample(
        np.asarray(logged, dtype=np.float32), settings.sample_size, settings.seed
    )
    base = drift.subsample(reference.embeddings, settings.sample_size, settings.seed + 1)
    if window.shape[1] != base.shape[1]:
        return None  # logged under another monitor.projection_dims
    mmd2, p_value = drift.mmd_test(base, window, settings.permutations, settings.seed)
    return {"method": "mmd-rbf", "mmd2": mmd2, "p_value": p_value, "compared": len(window)}


def monitor_report(
    service_db: str | Path,
    reference: Reference,
    settings: MonitorSettings,
    window: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict:
    """The report over [since, until): one entry per window holding predictions; `status` is
    drift when any window drifted (the exit code follows it), else ok, too_few or empty."""
    length = parse_duration(window or settings.window)
    until = until or datetime.now(UTC)
    since = since or until - 24 * length
    step = int(length.total_seconds() * 1e6)
    with db.open_service_db(service_db, read_only=True) as con:
        rows = sql.window_rows(con, since.isoformat(), until.isoformat())
    starts = (
        np.asarray(rows["ts_us"].to_numpy(zero_copy_only=False), dtype=np.int64) // step
    ) * step
    windows = []
    for start in np.unique(starts):
        part = rows.filter(pa.array(starts == start))
        entry = {"start": _iso(int(start)), "end": _iso(int(start) + step)}
        windows.append({**entry, **judge_window(part, reference, settings)})
    statuses = {w["status"] for w in windows}
    status = DRIFT if DRIFT in statuses else OK if OK in statuses else TOO_FEW if windows else EMPTY
    return {
        "status": status,
        "window": window or settings.window,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "thresholds": {
            "min_predictions": settings.min_predictions,
            "label_psi_max": settings.label_psi_max,
            "embedding_p_value": settings.embedding_p_value,
            "confidence_min": settings.confidence_min,
            "accuracy_min": settings.accuracy_min,
        },
        "reference": reference.summary(),
        "windows": windows,
    }


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`--since`: an ISO time (UTC when no zone is given) or a duration back from now (`6h`)."""
    from pipeline.errors import UserInputError

    now = now or datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            return now - parse_duration(text, "--since")
        except UserInputError:
            raise UserInputError(
                f"--since {text!r}: expected an ISO time (2026-11-30T20:00) or a duration (6h)"
            ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def format_report(report: dict) -> str:
    """The report as a few lines for people."""
    lines = [f"status: {report['status']}  (window {report['window']}, since {report['since']})"]
    ref = report["reference"]
    lines.append(f"reference: {ref['records']} training records, {ref['embeddings']} embeddings")
    for w in report["windows"]:
        emb = w["embedding"]
        emb_text = "-" if emb is None else f"MMD p={emb['p_value']:.3f}"
        acc = "-" if w["live_accuracy"] is None else f"{w['live_accuracy']:.2f} of {w['feedback']}"
        lines.append(
            f"{w['start'][:16]}  {w['status']:<7} n={w['predictions']:<6} "
            f"PSI={w['label_psi']:.3f}  {emb_text}  conf={w['mean_confidence']:.2f}  accuracy={acc}"
        )
        lines.extend(f"    {reason}" for reason in w["reasons"])
    return "\n".join(lines)
