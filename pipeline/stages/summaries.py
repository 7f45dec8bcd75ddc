"""What each stage's report says to people: printed by the stage's command after it runs and
by `pipeline summary` from reports/*.json, so both always say the same thing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

SHOWN_FILES = 10  # skipped files named on the terminal; the report lists them all


def _timed(template: str, *values: Any) -> str:
    """`template` filled with this run's timings, or "" when they are absent: the metric files
    of a fresh clone come from git without reports/run/ (pipeline/io/reports.py)."""
    return "" if any(v is None for v in values) else template.format(*values)


def dedup(report: Mapping[str, Any]) -> str:
    """Records in, kept, dropped by each step, rejected, erased, whether they account; files
    not read."""
    check = report["accounting"]
    # A report from before the steps were plug-ins has only the two dedup counts.
    steps = report.get("steps")
    if steps is None:
        steps = {name: {"dropped": report[f"{name}_duplicates"]} for name in ("exact", "near")}
    dropped = {name: step["dropped"] for name, step in steps.items()}
    dropped_text = " + ".join(f"{count} {name}" for name, count in dropped.items()) or "0"
    text = (
        f"{report['input_records']} records in: {report['kept']} kept, {dropped_text} dropped, "
        f"{report['rejected']['total']} rejected, {report['erased']} erased "
        f"({'accounts' if check['holds'] else 'DOES NOT ACCOUNT'})"
        + _timed("; {:.1f} s", (report.get("seconds") or {}).get("total"))
        + " -> reports/dedup.json"
    )
    skipped = report.get("skipped_files") or []
    if skipped:
        shown = ", ".join(f"{f['path']} ({f['reason']})" for f in skipped[:SHOWN_FILES])
        more = f" and {len(skipped) - SHOWN_FILES} more" if len(skipped) > SHOWN_FILES else ""
        text += f"\n{len(skipped)} file{'s' * (len(skipped) > 1)} not read: {shown}{more}"
    return text


def train(report: Mapping[str, Any]) -> str:
    """The model, the split sizes, epochs, speed and the best validation macro-F1 (or why
    training was skipped)."""
    counts = report["records"]
    if report.get("status") == "skipped":
        return (
            f"train: SKIPPED, {report['reason']} ({counts['labelled']} labelled, "
            f"{counts['unlabelled']} unlabelled records); no model trained or registered, "
            f"search works on every kept record"
            + _timed("; MLflow run {}", report.get("mlflow_run_id"))
        )
    unused = f"; {counts['unlabelled']} unlabelled not used" if counts.get("unlabelled") else ""
    return (
        f"train: {report['model']} on {counts['train']} records ({counts['val']} val, "
        f"{counts['test']} test{unused}), {report['epochs']} epochs"
        + _timed(
            " in {:.1f} s ({:.0f} samples/s)",
            report.get("fit_seconds"),
            report.get("train_samples_per_s"),
        )
        + f"; best val macro-F1 {report['best_val'].get('val_macro_f1', 0.0):.3f}"
        + _timed("; MLflow run {}", report.get("mlflow_run_id"))
    )


def evaluate(result: Mapping[str, Any]) -> str:
    """The headline test scores, the champion gate's decision (plainly, when the model loses
    to its baseline), and what the registry did when the command ran."""
    if result.get("status") == "skipped":
        return f"SKIPPED, {result['reason']}: no model to test; the champion is unchanged"
    f1, base = result["macro_f1"], result["baseline_macro_f1"]
    text = (
        f"test macro-F1 {f1:.4f} (baseline {base:.4f}), "
        f"accuracy {result['accuracy']:.4f}, ECE {result['ece']:.4f}"
        + _timed(", {:.1f} samples/s", (result.get("timing") or {}).get("inference_samples_per_s"))
    )
    if f1 < base:
        text += f"\nthe model LOSES to the TF-IDF baseline ({f1:.4f} vs {base:.4f}): not promoted"
    elif f1 == base:
        text += f"\nthe model only TIES the TF-IDF baseline ({f1:.4f}): not promoted"
    elif gate := result.get("champion"):
        verdict = "promoted" if gate["promoted"] else "not promoted"
        text += f"\nchampion: {verdict} ({gate['reason']})"
    reg = result.get("registry")  # returned by the stage, not written to metrics.json
    if reg:
        made = f"v{reg['version']} registered, " if reg.get("version") else ""
        held = reg.get("champion_version")
        text += f"\nregistry: {reg['name']}: {made}" + (
            f"champion v{held}" if held else "no champion"
        )
    return text


def index(report: Mapping[str, Any]) -> str:
    """Records indexed, the FAISS factory, its measured recall and the time spent."""
    return (
        f"indexed {report['records']} records with {report['factory']} "
        f"(recall@10 {report['recall_at_10']}"
        + _timed(
            ", build {} s, embed {} s", report.get("build_seconds"), report.get("embed_seconds")
        )
        + ")"
    )


def anomaly(report: Mapping[str, Any]) -> str:
    """Records scored, the score's median and top, the strangest ids and the time spent."""
    score = report["score"]
    return (
        f"scored {report['records']} records with {report['model']} "
        f"(median {score['p50']}, p99 {score['p99']}, max {score['max']}; strangest: "
        f"{', '.join(report['strangest']) or 'none'}"
        + _timed("; fit {} s, embed {} s", report.get("fit_seconds"), report.get("embed_seconds"))
        + ")"
    )


def predictions(report: Mapping[str, Any]) -> str:
    """Records predicted, by which champion version, and the disagreements with labels."""
    if report.get("model_version") is None:
        return "no champion yet: nothing predicted"
    return (
        f"{report['records']} records labelled by champion v{report['model_version']}; "
        f"{report['disagreements']} of {report['labelled']} given labels disputed "
        "(`pipeline records disagreements`)" + _timed(" ({} s)", report.get("seconds"))
    )


def retrieval(report: Mapping[str, Any]) -> str:
    """Each query set's size and its best search variant by nDCG (docs/retrieval.md)."""
    k = report.get("k", 10)
    parts = []
    for name in ("judged", "bootstrap"):
        found = report.get(name) or {}
        variants = {v: m for v, m in found.items() if isinstance(m, Mapping) and "ndcg@10" in m}
        if not found.get("queries") or not variants:
            parts.append(f"{name}: no queries yet" if name == "judged" else f"{name}: none")
            continue
        best, m = max(variants.items(), key=lambda item: item[1][f"ndcg@{k}"])
        parts.append(
            f"{name} {found['queries']} queries, best {best} "
            f"(recall@{k} {m[f'recall@{k}']}, nDCG@{k} {m[f'ndcg@{k}']})"
        )
    return "; ".join(parts)


# Stage -> (its report under paths.reports, its summary).
STAGES: dict[str, tuple[str, Callable[[Mapping[str, Any]], str]]] = {
    "dedup": ("dedup.json", dedup),
    "train": ("train.json", train),
    "evaluate": ("metrics.json", evaluate),
    "index": ("index.json", index),
    "anomaly": ("anomaly.json", anomaly),
    "predictions": ("predictions.json", predictions),
    "retrieval": ("retrieval.json", retrieval),
}
