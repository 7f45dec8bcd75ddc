"""Planted drift for the monitor's tests and benchmark: prompts of the T0 training tasks
(undrifted) and human turns of hh-rlhf conversations (drifted), from ../shared/data, and a
replay of them through the real prediction log into windows of the past (no tests here)."""

from __future__ import annotations

import gzip
import json
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from pipeline.monitor.log import PredictionLog

# Clusters of T0 tasks with many prompts each: the "training tasks".
T0_TASKS = (
    "extractive_qa",
    "multiple_choice_qa",
    "sentiment",
    "summarization",
    "topic_classification",
)


def t0_rows(path: Path, per_task: int, seed: int = 0) -> list[tuple[str, str]]:
    """(prompt, task) of `per_task` seeded prompts of each of T0_TASKS (or fewer if absent)."""
    by_task: dict[str, list[str]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("task") in T0_TASKS and row.get("prompt"):
                by_task.setdefault(row["task"], []).append(row["prompt"])
    rng = random.Random(seed)
    out = []
    for task in sorted(by_task):
        prompts = by_task[task]
        rng.shuffle(prompts)
        out.extend((p, task) for p in prompts[:per_task])
    rng.shuffle(out)
    return out


def hh_turns(path: Path, n: int, seed: int = 0) -> list[str]:
    """`n` seeded first human turns of hh-rlhf's chosen transcripts."""
    turns = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            chosen = json.loads(line)["chosen"]
            first = chosen.split("\n\nHuman: ", 1)[-1].split("\n\nAssistant:", 1)[0].strip()
            if first:
                turns.append(first)
    random.Random(seed).shuffle(turns)
    return turns[:n]


def replay(
    log: PredictionLog,
    windows: Sequence[Sequence[tuple[str, str, float]]],
    length: timedelta,
    end: datetime | None = None,
) -> list[datetime]:
    """Log each window's (text, label, confidence) rows inside consecutive windows of
    `length` ending before `end` (aligned as the report aligns them); returns their starts."""
    length_us = int(length.total_seconds() * 1e6)
    end = end or datetime.now(UTC)
    last = int(end.timestamp() * 1e6) // length_us * length_us
    starts = []
    for i, rows in enumerate(windows):
        start = datetime.fromtimestamp((last - (len(windows) - i) * length_us) / 1e6, UTC)
        starts.append(start)
        step = length / (len(rows) + 1)
        for j, (text, label, confidence) in enumerate(rows):
            log.record(
                uuid.uuid4().hex, "test", "clf", "1", text, label, confidence, 1.0, False,
                at=start + step * (j + 1),
            )  # fmt: skip
    log.flush()
    return starts


def perfect(
    rows: Sequence[tuple[str, str]], confidence: float = 0.9
) -> list[tuple[str, str, float]]:
    """Rows as a model that predicts their given label would log them."""
    return [(text, label, confidence) for text, label in rows]


class NearestCentroid:
    """A small real classifier for the planted-drift runs: each label's mean training
    embedding; a text gets the label of the most similar centroid, its confidence a softmax
    of the similarities. Stands in for a champion trained on the same tasks."""

    def __init__(
        self, embed: Callable[[list[str]], np.ndarray], rows: Sequence[tuple[str, str]]
    ) -> None:
        self.embed = embed
        vectors = embed([text for text, _ in rows])
        self.labels = sorted({label for _, label in rows})
        index = np.array([self.labels.index(label) for _, label in rows])
        centroids = np.stack([vectors[index == i].mean(axis=0) for i in range(len(self.labels))])
        self.centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)

    def predict(self, texts: Sequence[str]) -> list[tuple[str, str, float]]:
        """(text, label, confidence) per text."""
        sims = self.embed(list(texts)) @ self.centroids.T
        probs = np.exp(sims * 20.0)
        probs /= probs.sum(axis=1, keepdims=True)
        best = probs.argmax(axis=1)
        return [
            (t, self.labels[b], float(probs[i, b]))
            for i, (t, b) in enumerate(zip(texts, best, strict=True))
        ]
