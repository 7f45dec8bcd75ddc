"""The evaluate stage: test-set metrics, baseline, plots, ONNX check, MLflow run and registry.

Reads models/ (the train stage's checkpoint, meta.json, split.parquet) and the kept records;
writes reports/eval/ (plots data, per-class report, mistakes, model.onnx) and
reports/metrics.json, logs into the train run and registers the model.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import require
from pipeline.errors import UserInputError
from pipeline.evaluate.baseline import BaselineSettings

REGISTERED_MODEL = "prompt-classifier"


@dataclass(frozen=True)
class EvaluateSettings:
    models_dir: Path
    records: Path
    reports: Path
    tracking_uri: str
    seed: int
    batch_size: int = 64  # inference batch; also the ONNX check's batch
    ece_bins: int = 15  # equal-width confidence bins for ECE and the calibration plot
    mistakes: int = 20  # most confident mistakes logged as an MLflow table
    registered_model: str = REGISTERED_MODEL
    onnx: bool = True  # export to ONNX and check it against PyTorch
    lock_timeout_seconds: float = 600.0  # waiting for the writer lock to write the mistakes
    baseline: BaselineSettings = field(default_factory=BaselineSettings)

    @classmethod
    def from_cfg(cls, cfg: Any, root: Path) -> EvaluateSettings:
        """Read `paths`, `tracking`, `seed` and the optional `evaluate` section."""
        from omegaconf import OmegaConf

        from pipeline.tracking import TrackingSettings

        section = cfg.get("evaluate") or {}
        if not isinstance(section, Mapping):
            section = OmegaConf.to_container(section, resolve=True)
        known = {"batch_size", "ece_bins", "mistakes", "registered_model", "onnx", "baseline",
                 "lock_timeout_seconds"}  # fmt: skip
        unknown = sorted(set(section) - known)
        if unknown:
            raise UserInputError(f"config key evaluate.{unknown[0]} does not exist")
        extra = {k: section[k] for k in known - {"baseline"} if k in section}
        return cls(
            models_dir=root / require(cfg, "paths.models"),
            records=root / require(cfg, "paths.records"),
            reports=root / require(cfg, "paths.reports"),
            tracking_uri=TrackingSettings.from_cfg(require(cfg, "tracking")).resolved_uri(root),
            seed=int(require(cfg, "seed")),
            baseline=BaselineSettings.from_cfg(section.get("baseline")),
            **extra,
        )


def _label_indices(labels: Sequence[str], names: Sequence[str], where: str) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise UserInputError(f"{where}: label {unknown[0]!r} is not one of the model's labels")
    return np.array([index[n] for n in names], dtype=np.int64)


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


def run(cfg: Any, root: Path = Path()) -> dict[str, Any]:
    """Evaluate the trained model on the test split; write reports, log to MLflow, register."""
    from pipeline.evaluate import baseline, metrics, plots
    from pipeline.evaluate.data import load_splits, read_meta
    from pipeline.evaluate.registry import register_and_promote
    from pipeline.evaluate.tracking import log_evaluation
    from pipeline.io.atomic import atomic_dir, write_json
    from pipeline.train.inference import load_classifier

    s = EvaluateSettings.from_cfg(cfg, root)
    meta = read_meta(s.models_dir)
    split_path = s.models_dir / "split.parquet"
    splits = load_splits(split_path, s.records, meta["text"])
    train, test = splits["train"], splits["test"]
    if not len(test) or not len(train):
        raise UserInputError(
            f"{split_path}: the {'test' if not len(test) else 'train'} split is empty"
        )

    classifier = load_classifier(s.models_dir)
    labels = list(classifier.labels)
    y_true = _label_indices(labels, test.labels, str(split_path))
    started = time.perf_counter()
    probs = np.asarray(classifier.predict_proba(test.texts, batch_size=s.batch_size))
    infer_s = time.perf_counter() - started
    y_pred = probs.argmax(axis=1)

    scores = metrics.classification_metrics(y_true, y_pred, labels)
    per_class = metrics.per_class_report(y_true, y_pred, labels)
    matrix = metrics.confusion(y_true, y_pred, labels)
    ece, bins = metrics.calibration_bins(probs, y_true, s.ece_bins)
    mistakes = metrics.most_confident_mistakes(
        test.ids, test.texts, y_true, probs, labels, k=s.mistakes
    )

    started = time.perf_counter()
    y_train = _label_indices(labels, train.labels, str(split_path))
    lr = baseline.fit_baseline(train.texts, y_train, s.baseline, seed=s.seed)
    lr_pred = baseline.predict_proba(lr, test.texts, len(labels)).argmax(axis=1)
    lr_scores = metrics.classification_metrics(y_true, lr_pred, labels)
    baseline_s = time.perf_counter() - started

    out_dir = s.reports / "eval"
    with atomic_dir(out_dir) as tmp:
        started = time.perf_counter()
        onnx_report = _onnx_check(classifier, test.texts, tmp / "model.onnx", s) if s.onnx else {}
        onnx_s = time.perf_counter() - started
        _write_csv(
            tmp / "confusion.csv",
            ["actual", "predicted"],
            [(labels[a], labels[p]) for a, p in zip(y_true, y_pred, strict=True)],
        )
        _write_csv(
            tmp / "calibration.csv",
            ["confidence", "accuracy", "count"],
            [(b["confidence"], b["accuracy"], b["count"]) for b in bins],
        )
        write_json(tmp / "per_class.json", per_class)
        write_json(tmp / "confusion_matrix.json", {"labels": labels, "matrix": matrix.tolist()})
        plots.confusion_png(matrix, labels, tmp / "confusion.png")
        plots.calibration_png(bins, ece, tmp / "calibration.png")

    report: dict[str, Any] = {
        **scores,
        "ece": ece,
        "model": meta["model"],
        "n_test": len(test),
        "n_train": len(train),
        "labels": len(labels),
        "baseline_accuracy": lr_scores["accuracy"],
        "baseline_macro_f1": lr_scores["macro_f1"],
        "macro_f1_over_baseline": scores["macro_f1"] - lr_scores["macro_f1"],
        "onnx": onnx_report,
        "timing": {
            "inference_seconds": infer_s,
            "inference_samples_per_s": len(test) / infer_s if infer_s > 0 else 0.0,
            "baseline_seconds": baseline_s,
            "onnx_seconds": onnx_s,
        },
    }
    write_json(s.reports / "metrics.json", report)

    log_evaluation(
        s.tracking_uri,
        meta["mlflow_run_id"],
        {k: v for k, v in report.items() if k not in ("n_train", "labels")},
        per_class,
        [out_dir / "confusion.png", out_dir / "calibration.png", out_dir / "confusion_matrix.json"],
    )
    user_of = dict(zip(test.ids, test.users, strict=True))
    _publish_mistakes(cfg, root, s, meta["mlflow_run_id"], mistakes, user_of)
    outcome = register_and_promote(
        f"runs:/{meta['mlflow_run_id']}/model",
        s.registered_model,
        scores["macro_f1"],
        tracking_uri=s.tracking_uri,
        tags={"model": str(meta["model"]), "data_hash": str(meta.get("data_hash", ""))},
    )
    return {**report, "registry": outcome.to_dict()}


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
