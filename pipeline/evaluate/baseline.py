"""The classic baseline beside every deep model: TF-IDF features + logistic regression.

Trained on the very same train split and scored on the same test split as the model, on the
records' own text (what a user's TF-IDF + LR over their prompt column reads; a model with
`model.context` also reads the conversation), so a run shows what the deep model adds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BaselineSettings:
    ngram_max: int = 2  # word 1..n-grams; bigrams catch template phrases ("which of the")
    min_df: int = 2  # drop terms seen once: noise, and a smaller vocabulary on big splits
    max_features: int = 200_000  # bounds memory on large datasets
    sublinear_tf: bool = True  # log(1 + tf): long prompts do not dominate by length alone
    C: float = 10.0  # inverse L2 strength; TF-IDF rows are L2-normalised so this stays mild
    max_iter: int = 1000
    class_weight: str | None = "balanced"  # same imbalance handling a user would expect

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> BaselineSettings:
        """Build from a mapping, ignoring keys this baseline does not use."""
        cfg = cfg or {}
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})


def fit_baseline(
    texts: Sequence[str], targets: np.ndarray, settings: BaselineSettings, seed: int = 0
) -> Any:
    """Fit a TF-IDF + logistic-regression pipeline on `texts` and integer `targets`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    # min_df counts documents; with very few training texts it would empty the vocabulary.
    min_df = settings.min_df if len(texts) >= 10 * settings.min_df else 1
    vectorizer = TfidfVectorizer(
        ngram_range=(1, settings.ngram_max),
        min_df=min_df,
        max_features=settings.max_features,
        sublinear_tf=settings.sublinear_tf,
        dtype=np.float32,
    )
    classifier = LogisticRegression(
        C=settings.C,
        max_iter=settings.max_iter,
        class_weight=settings.class_weight,
        random_state=seed,
    )
    model = make_pipeline(vectorizer, classifier)
    model.fit(list(texts), targets)
    return model


def predict_proba(model: Any, texts: Sequence[str], n_labels: int) -> np.ndarray:
    """Probabilities over all `n_labels` classes, zero for classes absent from training."""
    probs = model.predict_proba(list(texts))
    out = np.zeros((len(texts), n_labels), dtype=np.float64)
    out[:, model.classes_] = probs
    return out
