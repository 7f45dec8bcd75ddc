"""PNG plots for MLflow: the confusion matrix and the reliability (calibration) diagram."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def confusion_png(matrix: np.ndarray, labels: Sequence[str], path: str | Path) -> Path:
    """Draw the confusion matrix (rows actual, columns predicted) to `path`."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    size = max(5.0, 0.6 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(matrix, display_labels=list(labels)).plot(
        ax=ax, cmap="Blues", xticks_rotation=45, colorbar=False, values_format="d"
    )
    ax.set_title("Confusion matrix (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})  # no version stamp: stable bytes
    plt.close(fig)
    return Path(path)


def calibration_png(bins: Sequence[dict[str, float]], ece: float, path: str | Path) -> Path:
    """Draw a reliability diagram (accuracy against confidence per bin) to `path`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    if bins:
        conf = [b["confidence"] for b in bins]
        acc = [b["accuracy"] for b in bins]
        sizes = [20 + 200 * b["count"] / max(x["count"] for x in bins) for b in bins]
        ax.plot(conf, acc, color="tab:blue")
        ax.scatter(conf, acc, s=sizes, color="tab:blue", label="bins (size = count)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Calibration (ECE = {ece:.3f})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return Path(path)
