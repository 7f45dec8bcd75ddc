"""Metrics and the TF-IDF baseline against hand-computed tiny cases."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluate import baseline, metrics

LABELS = ["a", "b", "c"]
# actual:    a a b b c
# predicted: a b b b a
Y_TRUE = np.array([0, 0, 1, 1, 2])
Y_PRED = np.array([0, 1, 1, 1, 0])


def test_classification_metrics_hand_computed() -> None:
    # a: P 1/2 R 1/2 F 1/2; b: P 2/3 R 1 F 0.8; c: P 0 R 0 F 0; supports 2, 2, 1.
    got = metrics.classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert got["accuracy"] == pytest.approx(3 / 5)
    assert got["macro_precision"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert got["macro_recall"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert got["macro_f1"] == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert got["weighted_precision"] == pytest.approx((2 * 0.5 + 2 * 2 / 3) / 5)
    assert got["weighted_recall"] == pytest.approx((2 * 0.5 + 2 * 1) / 5)
    assert got["weighted_f1"] == pytest.approx((2 * 0.5 + 2 * 0.8) / 5)


def test_absent_class_counts_in_macro_average() -> None:
    # A label the test split never shows still weighs 1/n in macro-F1 (as 0).
    got = metrics.macro_f1(Y_TRUE, Y_PRED, [*LABELS, "d"])
    assert got == pytest.approx((0.5 + 0.8) / 4)


def test_per_class_report_and_confusion() -> None:
    report = metrics.per_class_report(Y_TRUE, Y_PRED, LABELS)
    assert list(report) == LABELS
    assert report["b"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert report["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    matrix = metrics.confusion(Y_TRUE, Y_PRED, LABELS)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_ece_hand_computed() -> None:
    # Top-class confidences 0.95, 0.85, 0.75, 0.65, each alone in a tenth-wide bin;
    # correct, wrong, correct, correct.
    probs = np.array([[0.95, 0.05], [0.85, 0.15], [0.25, 0.75], [0.65, 0.35]])
    y_true = np.array([0, 1, 1, 0])
    ece, bins = metrics.calibration_bins(probs, y_true, n_bins=10)
    assert ece == pytest.approx((0.05 + 0.85 + 0.25 + 0.35) / 4)
    assert [b["count"] for b in bins] == [1, 1, 1, 1]
    assert [b["accuracy"] for b in bins] == [1.0, 1.0, 0.0, 1.0]  # bins in confidence order
    # One wide bin: mean confidence 0.8, accuracy 0.75.
    assert metrics.expected_calibration_error(probs, y_true, n_bins=1) == pytest.approx(0.05)


def test_ece_matches_torchmetrics() -> None:
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import multiclass_calibration_error

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 5)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_true = rng.integers(0, 5, size=500)
    ours = metrics.expected_calibration_error(probs, y_true, n_bins=15)
    theirs = multiclass_calibration_error(
        torch.tensor(probs, dtype=torch.float64), torch.tensor(y_true), num_classes=5, n_bins=15
    )
    assert ours == pytest.approx(float(theirs), abs=1e-6)


def test_ece_perfectly_calibrated_is_zero_and_empty_is_zero() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert metrics.expected_calibration_error(probs, np.array([0, 1])) == 0.0
    assert metrics.calibration_bins(np.zeros((0, 2)), np.zeros(0, dtype=int)) == (0.0, [])


def test_most_confident_mistakes_order_and_ties() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.9, 0.1], [0.6, 0.4], [0.7, 0.3]])
    y_true = np.array([1, 1, 1, 1, 0])  # rows 0, 2 and 3 are wrong; 0 and 2 tie at 0.9
    ids = ["z", "y", "x", "w", "v"]
    texts = ["t0", "t1", "t2" * 500, "t3", "t4"]
    got = metrics.most_confident_mistakes(ids, texts, y_true, probs, ["neg", "pos"], k=2)
    assert [m["id"] for m in got] == ["x", "z"]  # ties broken by id
    assert got[0]["actual"] == "pos" and got[0]["predicted"] == "neg"
    assert got[0]["confidence"] == pytest.approx(0.9)
    assert got[0]["actual_probability"] == pytest.approx(0.1)
    assert len(got[0]["text"]) == 300
    assert (
        metrics.most_confident_mistakes(ids, texts, y_true, probs, ["n", "p"], k=20)[-1]["id"]
        == "w"
    )


def test_baseline_learns_separable_words() -> None:
    train = ["refund my order please", "refund the parcel", "where is my refund"] * 4 + [
        "translate this sentence",
        "translate to french",
        "please translate the text",
    ] * 4
    y = np.array([0] * 12 + [1] * 12)
    model = baseline.fit_baseline(train, y, baseline.BaselineSettings(), seed=0)
    probs = baseline.predict_proba(model, ["a refund for the order", "translate it"], n_labels=3)
    assert probs.shape == (2, 3)
    assert probs.argmax(axis=1).tolist() == [0, 1]
    assert np.allclose(probs[:, 2], 0.0)  # a class never seen in training gets 0
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_baseline_settings_ignore_unknown_keys() -> None:
    settings = baseline.BaselineSettings.from_cfg({"C": 1.0, "other": 3})
    assert settings.C == 1.0 and settings.ngram_max == 2
