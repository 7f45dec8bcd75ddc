"""Builders shared by the index and search tests: a real store, real FAISS, seeded data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from helpers.store import write_records_store
from pipeline.index.build import publish_index
from pipeline.index.factory import IndexSettings
from pipeline.record import RECORD_SCHEMA

WORDS = [
    "refund",
    "parcel",
    "damaged",
    "password",
    "reset",
    "billing",
    "invoice",
    "weather",
    "rain",
    "cat",
    "dog",
    "train",
    "ticket",
    "delay",
    "printer",
    "driver",
    "kernel",
    "panic",
    "recipe",
    "bread",
    "oven",
]


def clustered(n: int, dim: int, seed: int, clusters: int = 20) -> np.ndarray:
    """Normalised Gaussian clusters: neighbours mean something, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    points = centers[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, dim))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def records_table(n: int, seed: int = 0, prompts: list[str] | None = None) -> pa.Table:
    """n records with every filterable field varied deterministically by position."""
    rng = np.random.default_rng(seed)
    rids = np.unique(rng.integers(1, 2**62, n + 16, dtype=np.int64))[:n]
    assert len(rids) == n
    if prompts is None:
        picks = rng.integers(0, len(WORDS), (n, 6))
        prompts = [" ".join(WORDS[j] for j in row) for row in picks.tolist()]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    data = {
        "rid": rids.tolist(),
        "id": [f"rec-{i}" for i in range(n)],
        "prompt": prompts,
        "response": [f"answer {i}" for i in range(n)],
        "label": [
            "rare" if i % 1000 == 7 else ("support" if i % 10 == 0 else "other") for i in range(n)
        ],
        "user_id": [f"user-{i % 7}" for i in range(n)],
        "session_id": [f"session-{i // 3}" for i in range(n)],
        "parent_id": [None] * n,
        "turn": [i % 3 for i in range(n)],
        "created_at": [start + timedelta(days=i % 365) for i in range(n)],
        "quality": [float(i % 5) for i in range(n)],
        "tags": [["billing"] if i % 4 == 0 else [] for i in range(n)],
        "origin": ["synthetic" if i % 2 else "real" for i in range(n)],
        "source": ["a.jsonl" if i % 3 else "b.csv" for i in range(n)],
        "metadata": [json.dumps({"n": i}) for i in range(n)],
        "file": ["a.jsonl"] * n,
        "line": list(range(1, n + 1)),
    }
    return pa.Table.from_pydict(data, schema=RECORD_SCHEMA)


def build_project(
    root: Path,
    n: int = 2000,
    dim: int = 32,
    factory: str = "Flat",
    seed: int = 0,
    prompts: list[str] | None = None,
) -> tuple[pa.Table, np.ndarray]:
    """A store and a published index under root/{store.duckdb,index}; returns records, vectors."""
    table = records_table(n, seed, prompts)
    write_records_store(root / "store.duckdb", table)
    vectors = clustered(n, dim, seed)
    rids = np.asarray(table.column("rid").to_pylist(), dtype=np.int64)
    publish_index(
        root / "index",
        rids,
        vectors,
        table.column("prompt").to_pylist(),
        IndexSettings(factory=factory, recall_queries=50),
        {"model": "test", "dim": dim},
    )
    return table, vectors
