"""The prediction log: every prediction the service makes, buffered in memory and appended
to the service DB in batches, as the query log is (pipeline/service/querylog.py says why).

A row keeps what the monitor needs and no raw text: time, key, model name and version,
label, confidence, latency, a sha256 of the input and a fixed random projection of the
input's MiniLM embedding (enough for embedding drift, not for reading the text back). The
embedding is computed at flush, in the maintenance thread, so a request never waits for
the encoder. With `monitor.log_text` the input is kept too, clipped and secrets- and
PII-redacted as the query log redacts queries.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.errors import BusyError
from pipeline.monitor.drift import projection
from pipeline.service.limits import QUERY_TEXT_MAX, clip
from pipeline.service.querylog import loggable
from pipeline.store import predictions as sql
from pipeline.store import service as db

# MiniLM reads 256 tokens (~1,500 characters): more buys the embedding nothing and would
# let a batch of long texts swell the buffer.
EMBED_TEXT_MAX = 2000

log = logging.getLogger("pipeline.serve")

Embedder = Callable[[list[str]], np.ndarray]


def input_hash(text: str) -> str:
    """sha256 of the input text as logged (lone surrogates kept, as the store hashes)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class PredictionLog:
    """A thread-safe buffer of predictions with an explicit `flush()`."""

    def __init__(
        self,
        service_db: str | Path,
        embedder: Embedder | None = None,
        projection_dims: int = 64,
        seed: int = 0,
        log_text: bool = False,
        lock_timeout: float = 10.0,
    ) -> None:
        self.service_db = Path(service_db)
        self.embedder = embedder
        self.projection_dims = projection_dims
        self.seed = seed
        self.log_text = log_text
        self.lock_timeout = lock_timeout
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()

    def record(
        self,
        prediction_id: str,
        key_id: str,
        model_name: str,
        model_version: str,
        text: str,
        label: str,
        confidence: float,
        latency_ms: float,
        truncated: bool,
        at: datetime | None = None,
        embedding: np.ndarray | None = None,
    ) -> None:
        """Buffer one prediction (its text is kept, clipped, until the flush embeds it);
        `embedding`: the input's vector from the predictor itself when it runs the log's
        encoder (then the flush does not embed it again); `at` backdates it (benchmarks
        and tests replay windows of the past)."""
        row = {
            "prediction_id": prediction_id,
            "ts": at or datetime.now(UTC),
            "key_id": key_id,
            "model_name": model_name,
            "model_version": str(model_version),
            "label": label,
            "confidence": float(confidence),
            "latency_ms": float(latency_ms),
            "input_hash": input_hash(text),
            "truncated": bool(truncated),
            "_text": clip(text, EMBED_TEXT_MAX),
            "_vector": embedding,
        }
        with self._lock:
            self._rows.append(row)

    def pending(self) -> int:
        """Rows not yet written."""
        return len(self._rows)

    def flush(self) -> int:
        """Embed and append the buffered rows to the service DB; returns how many were written."""
        with self._flush_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return 0
            table = self._table(rows)
            try:
                with db.open_service_db(self.service_db, lock_timeout=self.lock_timeout) as con:
                    sql.append_predictions(con, table)
            except BusyError:
                with self._lock:
                    self._rows[:0] = rows  # keep them, in order, for the next flush
                raise
            return len(rows)

    def _table(self, rows: list[dict]) -> pa.Table:
        vectors = self._vectors(rows)
        stored = []
        for i, row in enumerate(rows):
            out = {k: v for k, v in row.items() if k not in ("_text", "_vector")}
            out["embedding"] = None if vectors[i] is None else vectors[i].tolist()
            out["text"] = loggable(row["_text"], QUERY_TEXT_MAX) if self.log_text else None
            stored.append(out)
        return pa.Table.from_pylist(stored, schema=sql.PREDICTION_LOG_SCHEMA)

    def _vectors(self, rows: list[dict]) -> list[np.ndarray | None]:
        """Each row's projected embedding: the predictor's vector where it gave one, the
        log's encoder for the rest (None where there is no encoder)."""
        out: list[np.ndarray | None] = [None] * len(rows)
        given = [i for i, row in enumerate(rows) if row["_vector"] is not None]
        if given:
            projected = self._project(np.stack([rows[i]["_vector"] for i in given]))
            for i, vector in zip(given, projected, strict=True):
                out[i] = vector
        todo = [i for i, row in enumerate(rows) if row["_vector"] is None]
        embedded = self._embed([rows[i]["_text"] for i in todo]) if todo else None
        if embedded is not None:
            for i, vector in zip(todo, embedded, strict=True):
                out[i] = vector
        return out

    def _project(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        return vectors @ projection(vectors.shape[1], self.projection_dims, self.seed)

    def _embed(self, texts: Sequence[str]) -> np.ndarray | None:
        if self.embedder is None:
            return None
        try:
            vectors = np.asarray(self.embedder(list(texts)), dtype=np.float32)
        except Exception:  # the rows matter more than their embeddings: log them without
            # Not retried until restart: a missing encoder would fail every flush alike.
            log.exception("prediction log: embedding failed; logging without embeddings")
            self.embedder = None
            return None
        return self._project(vectors)
