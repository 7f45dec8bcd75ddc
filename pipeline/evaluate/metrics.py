"""Test-set metrics as plain functions over label indices and probabilities (scikit-learn).

Inputs are integer class indices into `labels` (the model's label order) and, where needed,
an (n, n_labels) probability matrix. Outputs are plain Python values, ready for JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _indices(labels: Sequence[str]) -> list[int]:
    # Passing every class index keeps absent classes in the averages and the matrix, so a
    # test split that misses a class is scored against the same label set as the model.
    return list(range(len(labels)))


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]
) -> dict[str, float]:
    """Accuracy and macro/weighted precision, recall and F1."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    out: dict[str, float] = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=_indices(labels), average=average, zero_division=0
        )
        out[f"{average}_precision"] = float(p)
        out[f"{average}_recall"] = float(r)
        out[f"{average}_f1"] = float(f)
    return out


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> float:
    """Macro-averaged F1 over every label (absent classes count as 0)."""
    return classification_metrics(y_true, y_pred, labels)["macro_f1"]


def per_class_report(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support for each label, keyed by label name."""
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=_indices(labels), average=None, zero_division=0
    )
    return {
        label: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, label in enumerate(labels)
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Confusion counts: row = actual label index, column = predicted label index."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=_indices(labels))


def calibration_bins(
    probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15
) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error of the top-class confidence, and the non-empty bins.

    Bins are equal-width, [low, high) as in torchmetrics, the last one closed (the tests
    check the value against `torchmetrics.functional.multiclass_calibration_error`).
    ECE = sum over bins of |accuracy - mean confidence| weighted by the bin's share.
    """
    if len(probs) == 0:
        return 0.0, []
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    ece = 0.0
    bins: list[dict[str, float]] = []
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        if count == 0:
            continue
        conf, acc = float(confidence[mask].mean()), float(correct[mask].mean())
        ece += abs(acc - conf) * count / len(probs)
        bins.append(
            {
                "bin_low": float(edges[b]),
                "bin_high": float(edges[b + 1]),
                "confidence": conf,
                "accuracy": acc,
                "count": count,
            }
        )
    return float(ece), bins


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error (L1, equal-width bins) of the top-class confidence."""
    return calibration_bins(probs, y_true, n_bins)[0]


def most_confident_mistakes(
    ids: Sequence[str],
    texts: Sequence[str],
    y_true: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    k: int = 20,
    max_chars: int = 300,
) -> list[dict[str, Any]]:
    """The `k` wrong predictions with the highest confidence, most confident first.

    Ties are broken by id so the list is the same on every run.
    """
    predicted = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    order = sorted(wrong.tolist(), key=lambda i: (-float(confidence[i]), ids[i]))[:k]
    return [
        {
            "id": ids[i],
            "text": texts[i][:max_chars],
            "actual": labels[int(y_true[i])],
            "predicted": labels[int(predicted[i])],
            "confidence": float(confidence[i]),
            "actual_probability": float(probs[i, int(y_true[i])]),
        }
        for i in order
    ]
