"""What a window is compared with: the training records' label counts and the projected
embeddings of a seeded sample of their prompts (the text a caller sends to POST /predict).

The reference is the labelled records of `paths.records` (the data the champion was trained
and evaluated on, before its split); their embeddings come through the embedding cache, so
only the first report after a `dvc repro` encodes anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import NotFoundError
from pipeline.monitor.drift import projection, subsample
from pipeline.monitor.settings import MonitorSettings


@dataclass(frozen=True)
class Reference:
    """Training label counts and projected training embeddings (rows, projection_dims)."""

    label_counts: dict[str, int]
    embeddings: np.ndarray

    def summary(self) -> dict:
        """What the report says about its reference."""
        return {
            "records": int(sum(self.label_counts.values())),
            "labels": dict(sorted(self.label_counts.items())),
            "embeddings": len(self.embeddings),
        }


def reference_from(
    labels: list[str], vectors: np.ndarray | None, settings: MonitorSettings
) -> Reference:
    """A reference from training labels and (full-size) embeddings of sampled prompts."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    if vectors is None or not len(vectors):
        return Reference(counts, np.zeros((0, settings.projection_dims), np.float32))
    vectors = np.asarray(vectors, dtype=np.float32)
    return Reference(
        counts, vectors @ projection(vectors.shape[1], settings.projection_dims, settings.seed)
    )


def load_reference(
    records: str | Path,
    settings: MonitorSettings,
    embed_cfg: dict | None = None,
    cache_dir: str | Path | None = None,
    embedder: Callable[[list[str]], np.ndarray] | None = None,
) -> Reference:
    """The reference of the labelled records in `records` (records.parquet), embedded by
    `embedder` (the service's ONNX encoder) or through the embedding cache (the CLI)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipeline.embed import EmbedSettings, embed_texts

    path = Path(records)
    if not path.exists():
        raise NotFoundError(f"{path}: no records yet; run `dvc repro` first (the reference)")
    table = pq.read_table(path, columns=["prompt", "label"])
    table = table.filter(pc.is_valid(table["label"]))
    labels = table["label"].to_pylist()
    prompts = np.array(table["prompt"].to_pylist(), dtype=object)
    sample = subsample(prompts, settings.reference_size, settings.seed).tolist()
    if embedder is not None:
        batches = [embedder(sample[i : i + 64]) for i in range(0, len(sample), 64)]
        vectors = np.concatenate(batches) if batches else None
    else:
        settings_ = EmbedSettings.from_cfg(embed_cfg or {})
        vectors = embed_texts(sample, settings_, cache_dir=cache_dir)
    return reference_from(labels, vectors, settings)


class ReferenceCache:
    """The service's reference, rebuilt only when records.parquet changes (a `dvc repro`)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._reference: Reference | None = None
        self._lock = threading.Lock()

    def get(self, records: Path, settings: MonitorSettings, **kwargs: object) -> Reference:
        """The reference of `records` under `settings` (see load_reference for kwargs)."""
        stat = records.stat() if records.exists() else None
        key = (str(records), stat and (stat.st_mtime_ns, stat.st_size), settings)
        with self._lock:
            if self._key != key or self._reference is None:
                self._reference = load_reference(records, settings, **kwargs)  # type: ignore[arg-type]
                self._key = key
            return self._reference
