"""The evaluate stage: test-set metrics, baseline, plots, ONNX check, MLflow run and registry.

Reads models/ (the train stage's checkpoint, meta.json, split.parquet) and the kept records;
writes reports/eval/ (plots data, per-class report, mistakes, model.onnx) and
reports/metrics.json, logs into the train run, and promotes the model to `champion` only when
it beats its baseline and the current champion (pipeline/evaluate/registry.py).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import UserInputError
from pipeline.evaluate.data import SplitTexts
from pipeline.evaluate.registry import RegistryOutcome
from pipeline.evaluate.settings import REGISTERED_MODEL, EvaluateSettings

__all__ = ["REGISTERED_MODEL", "EvaluateSettings", "run"]


# The plot files' columns, which dvc.yaml's `plots:` name as x and y.
CONFUSION_COLUMNS = ("actual", "predicted")
CALIBRATION_COLUMNS = ("confidence", "accuracy", "count")
CHAMPION_FILE = "champion.json"  # the champion's name, version and run (reports/)


def run(cfg: Any, root: Path = Path()) -> dict[str, Any]:
    """Evaluate the trained model on the test split; write reports, log to MLflow, register."""
    from pipeline.evaluate.data import read_meta
    from pipeline.io.reports import write_report
    from pipeline.train.inference import load_classifier

    s = EvaluateSettings.from_cfg(cfg, root)
    meta = read_meta(s.models_dir)
    if meta.get("status") == "skipped":
        return _skipped(s, meta)
    train, test = _read_splits(s, meta["text"], meta.get("context", "none"))
    classifier = load_classifier(s.models_dir)
    labels = list(classifier.labels)
    y_true = _label_indices(labels, test.labels, str(s.split_path))
    scores = _score_model(classifier, test, y_true, labels, s)
    baseline = _score_baseline(train, test, y_true, labels, s)
    spec = _predictor_spec(classifier, meta) if s.onnx else None
    onnx = _write_eval_dir(classifier, test.inputs, y_true, scores, labels, s, spec)
    report = _report(meta, scores, baseline, onnx, n_train=len(train), n_labels=len(labels))
    _log_evaluation(s, meta["mlflow_run_id"], report, scores.per_class, with_predictor=s.onnx)
    user_of = dict(zip(test.ids, test.users, strict=True))
    _publish_mistakes(cfg, root, s, meta["mlflow_run_id"], scores.mistakes, user_of)
    outcome = _gate(s, meta, report, test.ids)
    _write_champion(s, outcome.name, outcome.champion_version, outcome.champion_run_id)
    # The metric file comes last, so it holds the gate's decision (docs/evaluation.md).
    report["champion"] = {"promoted": outcome.promoted, "reason": outcome.reason}
    write_report(s.reports, "metrics.json", report)
    return {**report, "registry": outcome.to_dict()}


@dataclass(frozen=True)
class ModelScores:
    """The model's test predictions and what is measured from them."""

    y_pred: np.ndarray
    metrics: dict[str, float]  # accuracy, macro/weighted precision, recall, F1
    per_class: dict[str, Any]
    matrix: np.ndarray
    ece: float
    bins: list[dict[str, float]]  # the calibration plot's bins
    mistakes: list[dict[str, Any]]  # the most confident ones, quoting records' text
    inference_seconds: float
    n_test: int


def _read_splits(
    s: EvaluateSettings, text_mode: str, context: str
) -> tuple[SplitTexts, SplitTexts]:
    """The train and test sides of the published split, joined to the records' text."""
    from pipeline.evaluate.data import load_splits

    splits = load_splits(s.split_path, s.records, text_mode, context)
    train, test = splits["train"], splits["test"]
    if not len(test) or not len(train):
        raise UserInputError(
            f"{s.split_path}: the {'test' if not len(test) else 'train'} split is empty"
        )
    return train, test


def _label_indices(labels: Sequence[str], names: Sequence[str], where: str) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise UserInputError(f"{where}: label {unknown[0]!r} is not one of the model's labels")
    return np.array([index[n] for n in names], dtype=np.int64)


def _score_model(
    classifier: Any, test: SplitTexts, y_true: np.ndarray, labels: list[str], s: EvaluateSettings
) -> ModelScores:
    """Predict the test split (timed) and score it: metrics, calibration, mistakes."""
    from pipeline.evaluate import metrics

    started = time.perf_counter()
    probs = np.asarray(classifier.predict_proba(test.inputs, batch_size=s.batch_size))
    seconds = time.perf_counter() - started
    y_pred = probs.argmax(axis=1)
    ece, bins = metrics.calibration_bins(probs, y_true, s.ece_bins)
    return ModelScores(
        y_pred=y_pred,
        metrics=metrics.classification_metrics(y_true, y_pred, labels),
        per_class=metrics.per_class_report(y_true, y_pred, labels),
        matrix=metrics.confusion(y_true, y_pred, labels),
        ece=ece,
        bins=bins,
        mistakes=metrics.most_confident_mistakes(
            test.ids, test.texts, y_true, probs, labels, k=s.mistakes
        ),
        inference_seconds=seconds,
        n_test=len(test),
    )


def _score_baseline(
    train: SplitTexts, test: SplitTexts, y_true: np.ndarray, labels: list[str], s: EvaluateSettings
) -> dict[str, float]:
    """Fit the TF-IDF baseline on the train split and score it on test; adds its seconds."""
    from pipeline.evaluate import baseline, metrics

    started = time.perf_counter()
    y_train = _label_indices(labels, train.labels, str(s.split_path))
    lr = baseline.fit_baseline(train.texts, y_train, s.baseline, seed=s.seed)
    lr_pred = baseline.predict_proba(lr, test.texts, len(labels)).argmax(axis=1)
    scores = metrics.classification_metrics(y_true, lr_pred, labels)
    return {**scores, "seconds": time.perf_counter() - started}


def _write_eval_dir(
    classifier: Any,
    texts: Sequence[str],
    y_true: np.ndarray,
    scores: ModelScores,
    labels: list[str],
    s: EvaluateSettings,
    spec: Any = None,
) -> dict[str, Any]:
    """Publish reports/eval/ (ONNX check and the predictor's spec, plot data, plots);
    returns the ONNX report."""
    from pipeline.evaluate import plots
    from pipeline.io.atomic import atomic_dir, write_json

    with atomic_dir(s.reports / "eval") as tmp:
        started = time.perf_counter()
        onnx = _onnx_check(classifier, texts, tmp / "model.onnx", s) if s.onnx else {}
        onnx_seconds = time.perf_counter() - started
        if spec is not None:
            from pipeline.predict.spec import SPEC_FILE

            spec.write(tmp / SPEC_FILE)
        _write_csv(
            tmp / "confusion.csv",
            CONFUSION_COLUMNS,
            [(labels[a], labels[p]) for a, p in zip(y_true, scores.y_pred, strict=True)],
        )
        _write_csv(
            tmp / "calibration.csv",
            CALIBRATION_COLUMNS,
            [(b["confidence"], b["accuracy"], b["count"]) for b in scores.bins],
        )
        write_json(tmp / "per_class.json", scores.per_class)
        matrix = {"labels": labels, "matrix": scores.matrix.tolist()}
        write_json(tmp / "confusion_matrix.json", matrix)
        plots.confusion_png(scores.matrix, labels, tmp / "confusion.png")
        plots.calibration_png(scores.bins, scores.ece, tmp / "calibration.png")
    return {"report": onnx, "seconds": onnx_seconds}


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _onnx_check(
    classifier: Any, texts: Sequence[str], path: Path, s: EvaluateSettings
) -> dict[str, Any]:
    """Export to `path` and compare ONNX with PyTorch logits on every test input."""
    from pipeline.evaluate import export

    sequence_axis = classifier.inputs.sequence_axis
    export.export_onnx(classifier.module, classifier.export_inputs(texts[:2]), path, sequence_axis)
    batches = export.batched_inputs(classifier.export_inputs, texts, s.batch_size)
    diff = export.max_abs_difference(classifier.module, export.onnx_session(path), batches)
    return {"max_abs_diff": diff, "opset": export.OPSET, "path": path.name}


def _report(
    meta: Mapping[str, Any],
    scores: ModelScores,
    baseline: Mapping[str, float],
    onnx: Mapping[str, Any],
    n_train: int,
    n_labels: int,
) -> dict[str, Any]:
    """reports/metrics.json: test scores, the baseline's, the ONNX check and step timings."""
    infer_s = scores.inference_seconds
    return {
        **scores.metrics,
        "ece": scores.ece,
        "model": meta["model"],
        "n_test": scores.n_test,
        "n_train": n_train,
        "labels": n_labels,
        "baseline_accuracy": baseline["accuracy"],
        "baseline_macro_f1": baseline["macro_f1"],
        "macro_f1_over_baseline": scores.metrics["macro_f1"] - baseline["macro_f1"],
        "onnx": onnx["report"],
        "timing": {
            "inference_seconds": infer_s,
            "inference_samples_per_s": scores.n_test / infer_s if infer_s > 0 else 0.0,
            "baseline_seconds": baseline["seconds"],
            "onnx_seconds": onnx["seconds"],
        },
    }


def _predictor_spec(classifier: Any, meta: Mapping[str, Any]) -> Any:
    from pipeline.evaluate.predictor import predictor_spec

    return predictor_spec(classifier, meta)


def _log_evaluation(
    s: EvaluateSettings,
    run_id: str,
    report: Mapping[str, Any],
    per_class: Mapping[str, Any],
    with_predictor: bool = False,
) -> None:
    """Log the test metrics, per-class report and plots into the train stage's MLflow run,
    and the ONNX graph with its spec as `predictor/` (what a registry version serves)."""
    from pipeline.evaluate.predictor import log_predictor
    from pipeline.evaluate.tracking import log_evaluation

    out_dir = s.reports / "eval"
    log_evaluation(
        s.tracking_uri,
        run_id,
        report,
        per_class,
        [out_dir / "confusion.png", out_dir / "calibration.png", out_dir / "confusion_matrix.json"],
    )
    if with_predictor:
        log_predictor(s.tracking_uri, run_id, out_dir)


def _write_champion(
    s: EvaluateSettings, name: str, version: str | None, run_id: str | None
) -> None:
    """reports/champion.json: the version `champion` names after the gate. The predictions
    stage depends on it, so it re-runs when the champion changes and not otherwise."""
    from pipeline.io.atomic import write_json

    s.reports.mkdir(parents=True, exist_ok=True)
    write_json(s.reports / CHAMPION_FILE, {"name": name, "version": version, "run_id": run_id})


def _gate(
    s: EvaluateSettings, meta: Mapping[str, Any], report: Mapping[str, Any], test_ids: Sequence[str]
) -> RegistryOutcome:
    """The champion gate on the run's scores; its decision is tagged on the run."""
    from pipeline.evaluate.registry import Candidate, gate, tag_decision

    candidate = Candidate(
        run_id=str(meta["mlflow_run_id"]),
        macro_f1=float(report["macro_f1"]),
        baseline_macro_f1=float(report["baseline_macro_f1"]),
        data_hash=str(meta.get("data_hash", "")),
        test_split=split_digest(test_ids),
        model=str(meta["model"]),
        servable=s.onnx,  # evaluate logged `predictor/` to the run
    )
    outcome = gate(candidate, s.registered_model, s.tracking_uri,
                   register_every_run=s.register_every_run)  # fmt: skip
    tag_decision(s.tracking_uri, candidate, outcome)
    return outcome


def split_digest(ids: Sequence[str]) -> str:
    """A digest of the test split's record ids: two scores compare only on the same one."""
    import hashlib

    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode("utf-8")).hexdigest()[:16]


def _skipped(s: EvaluateSettings, meta: Mapping[str, Any]) -> dict[str, Any]:
    """No model to score: say why in reports/metrics.json, leave DVC's outs (reports/eval/ and
    its plot CSVs, header only) and mark the train run; the registry is not touched."""
    from pipeline.io.atomic import atomic_dir
    from pipeline.io.reports import write_report

    records = meta.get("records") or {}
    report = {
        "status": "skipped",
        "reason": meta.get("reason", "training was skipped"),
        "model": meta.get("model"),
        "n_test": 0,
        "n_train": 0,
        "n_labelled": int(records.get("labelled", 0)),
        "n_unlabelled": int(records.get("unlabelled", 0)),
    }
    with atomic_dir(s.reports / "eval") as tmp:
        _write_csv(tmp / "confusion.csv", CONFUSION_COLUMNS, [])
        _write_csv(tmp / "calibration.csv", CALIBRATION_COLUMNS, [])
    write_report(s.reports, "metrics.json", report)  # and no stale timings beside it
    _write_champion(s, s.registered_model, None, None)  # nothing to predict with
    if meta.get("mlflow_run_id"):
        from mlflow.tracking import MlflowClient

        from pipeline.tracking import set_new_tags

        client = MlflowClient(tracking_uri=s.tracking_uri)
        set_new_tags(client, str(meta["mlflow_run_id"]), {"evaluated": "skipped"})
    return {**report, "registry": None}


def _publish_mistakes(
    cfg: Any,
    root: Path,
    s: EvaluateSettings,
    run_id: str,
    mistakes: list[dict[str, Any]],
    user_of: Mapping[str, str | None],
) -> None:
    """Write the mistakes (they quote records' text) holding the writer lock, without the
    records of users on the erasure list: an erasure either comes first and is honoured
    here, or comes after and scrubs what is written here (docs/erasure.md)."""
    import sys

    from pipeline.evaluate.mistakes import drop_erased
    from pipeline.evaluate.tracking import log_mistakes
    from pipeline.io.atomic import write_json
    from pipeline.io.files import read_erasures
    from pipeline.service.settings import ServicePaths
    from pipeline.service.writer import writer

    paths = ServicePaths.from_cfg(cfg.paths, cfg.get("tracking")).under(root)

    def waiting(holder: str) -> None:
        print(f"evaluate: waiting up to {s.lock_timeout_seconds:g} s for the writer lock "
              f"({holder}) to write the mistakes", file=sys.stderr, flush=True)  # fmt: skip

    with writer(paths, "pipeline evaluate", s.lock_timeout_seconds, waiting):
        kept = drop_erased(mistakes, user_of, read_erasures(paths.erasures))
        write_json(s.reports / "eval" / "mistakes.json", kept)
        log_mistakes(s.tracking_uri, run_id, kept)
