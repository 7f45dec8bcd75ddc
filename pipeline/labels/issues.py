"""Label issues: out-of-sample class probabilities by K-fold cross-validation, then cleanlab.

A logistic regression over the cached MiniLM embeddings (the vectors the train and index
stages share, so this costs a cache read and a few small fits) gives every labelled record
probabilities from a model that never saw it; cleanlab's `find_label_issues` (confident
learning) estimates how many labels are wrong, and the records whose given label gets the
lowest probability are flagged, that many (see `label_issues`).
Records already reviewed (data/corrections.jsonl) are left out: a dismissal stops re-flagging.
Torch is never imported here: the embed cache is read with the ONNX encoder's settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import UserInputError

FEATURES = ("embed", "embed+tfidf")


@dataclass(frozen=True)
class LabelSettings:
    """conf/labels/default.yaml."""

    folds: int = 5  # cross-validation folds: each record's probabilities come from the others
    # embed+tfidf: word 1-2 grams beside the vectors (found more wrong labels: RESULTS.md)
    features: str = "embed+tfidf"
    C: float = 4.0  # inverse L2 strength of the logistic regression
    max_iter: int = 500
    filter_by: str = "prune_by_noise_rate"  # cleanlab's find_label_issues method
    seed: int = 42

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None, seed: int = 42) -> LabelSettings:
        known = {k: cfg[k] for k in cls.__dataclass_fields__ if cfg and k in cfg}
        settings = cls(**{"seed": seed, **known})
        if settings.features not in FEATURES:
            raise UserInputError(f"labels.features {settings.features!r}: expected {FEATURES}")
        if int(settings.folds) < 2:
            raise UserInputError(f"labels.folds={settings.folds}: need at least 2")
        return settings


@dataclass(frozen=True)
class Probs:
    """Out-of-sample probabilities: one row per record, one column per class."""

    labels: np.ndarray  # int class of each record's given label
    classes: list[str]
    pred_probs: np.ndarray  # (n, k), rows sum to 1


def cross_val_probs(
    vectors: np.ndarray, texts: Sequence[str] | None, given: Sequence[str], s: LabelSettings
) -> Probs:
    """K-fold probabilities of a logistic regression that never saw the record it scores."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    classes = sorted(set(given))
    if len(classes) < 2:
        raise UserInputError(f"label issues need at least 2 labels; found {classes}")
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[g] for g in given], dtype=np.int64)
    smallest = int(np.bincount(labels).min())
    # A class rarer than the folds cannot be in every fold: fewer folds, never fewer than 2.
    folds = max(2, min(int(s.folds), smallest))
    probs = np.zeros((len(labels), len(classes)))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=s.seed)
    for train, test in splitter.split(vectors, labels):
        x_train, x_test = _features(vectors, texts, train, test, s)
        model = LogisticRegression(C=s.C, max_iter=s.max_iter)
        model.fit(x_train, labels[train])
        probs[np.ix_(test, model.classes_)] = model.predict_proba(x_test)
    probs /= probs.sum(axis=1, keepdims=True)
    return Probs(labels, classes, probs)


def _features(
    vectors: np.ndarray, texts: Sequence[str] | None, train: np.ndarray, test: np.ndarray,
    s: LabelSettings,
) -> tuple[Any, Any]:  # fmt: skip
    if s.features == "embed":
        return vectors[train], vectors[test]
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    if texts is None:
        raise UserInputError("labels.features=embed+tfidf needs the texts")
    # Fitted on the training folds only: the held-out fold's words stay unseen.
    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=50_000, sublinear_tf=True)
    words = tfidf.fit_transform([texts[i] for i in train])
    held = tfidf.transform([texts[i] for i in test])
    return (hstack([csr_matrix(vectors[train]), words]).tocsr(),
            hstack([csr_matrix(vectors[test]), held]).tocsr())  # fmt: skip


def self_confidence(probs: Probs) -> np.ndarray:
    """The probability each record's given label gets (low = suspicious)."""
    return probs.pred_probs[np.arange(len(probs.labels)), probs.labels]


def label_issues(probs: Probs, s: LabelSettings) -> np.ndarray:
    """The k least self-confident positions, most suspicious first, k = how many cleanlab
    flags. benchmarks/labels.py measured this ranking above cleanlab's own flagged set of
    the same size on every data set (RESULTS.md): cleanlab estimates how many, the
    self-confidence of the out-of-sample probabilities picks which."""
    k = len(cleanlab_issues(probs, s))
    return np.argsort(self_confidence(probs), kind="stable")[:k]


def cleanlab_issues(probs: Probs, s: LabelSettings) -> np.ndarray:
    """Positions cleanlab flags, most suspicious (lowest self-confidence) first."""
    from cleanlab.filter import find_label_issues

    return np.asarray(
        find_label_issues(
            probs.labels, probs.pred_probs, filter_by=s.filter_by,
            return_indices_ranked_by="self_confidence",
        )
    )  # fmt: skip


def issue_rows(
    ids: Sequence[str], probs: Probs, flagged: np.ndarray, skip: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """One object per flagged record, most suspicious first; reviewed ids (`skip`) left out."""
    quality = self_confidence(probs)
    best = probs.pred_probs.argmax(axis=1)
    out = []
    for i in flagged.tolist():
        if ids[i] in skip:
            continue
        out.append({
            "id": ids[i],
            "label": probs.classes[probs.labels[i]],
            "suggested_label": probs.classes[best[i]],
            "score": round(float(1.0 - quality[i]), 6),  # higher = more suspicious
            "label_quality": round(float(quality[i]), 6),  # P(given label), out of sample
            "suggested_confidence": round(float(probs.pred_probs[i, best[i]]), 6),
        })  # fmt: skip
    return out


def find_issues(cfg: Any, root: Path) -> dict[str, Any]:
    """Label issues of the kept records (records.parquet) under `root`, as the CLI prints
    them: `issues` (all flagged, unreviewed) and the counts behind them."""
    from pipeline.dedup.corrections import read as read_corrections
    from pipeline.embed.api import EmbedSettings, embed
    from pipeline.train.data import DataSettings, labelled, read_records

    embed_settings = EmbedSettings.from_cfg(cfg.embed)
    field = str(cfg.data.get("label_field", "label"))
    if field != "label":  # corrections change the `label` column: review the labels trained on
        raise UserInputError(
            f"data.label_field={field!r}: label issues and corrections work on the `label` "
            "column; map the field to `label` in data.fields"
        )
    data = DataSettings(field, embed_settings.text)
    frame, unlabelled = labelled(read_records(root / cfg.paths.records), data, "records.parquet")
    s = LabelSettings.from_cfg(cfg.get("labels"), int(cfg.get("seed", 42)))
    texts = frame["text"].tolist()
    result = embed(texts, embed_settings, root / cfg.paths.embed_cache)
    probs = cross_val_probs(result.vectors, texts, frame["label"].tolist(), s)
    flagged = label_issues(probs, s)
    reviewed = read_corrections(root / cfg.paths.get("corrections", "data/corrections.jsonl"))
    ids = frame["id"].astype(str).tolist()
    rows = issue_rows(ids, probs, flagged, frozenset(reviewed))
    prompts = dict(zip(ids, frame["prompt"].astype(str), strict=True))
    for row in rows:
        row["prompt"] = prompts[row["id"]][:200]
    return {
        "records": len(frame), "unlabelled": unlabelled, "classes": probs.classes,
        "flagged": len(flagged), "reviewed": len(flagged) - len(rows), "issues": rows,
        "embedded": result.encoded, "from_cache": result.cached,
    }  # fmt: skip
