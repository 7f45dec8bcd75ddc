"""Typed settings of the search service, read from `cfg.serve` and `cfg.paths`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError
from pipeline.service.tls import TlsSettings


@dataclass(frozen=True)
class ServeSettings:
    """conf/serve/default.yaml."""

    host: str = "127.0.0.1"  # loopback: exposing the API is a deliberate act
    port: int = 8000
    workers: int = 1
    reload_seconds: float = 1.0  # index/store change check interval
    key_cache_seconds: float = 2.0  # a revoked key stops working within this
    log_flush_seconds: float = 1.0
    lock_timeout_seconds: float = 10.0
    max_body_bytes: int = 1_048_576  # a request body above this gets 413, before it is read
    # POST /erase waits this long for the writer lock (a dedup or index build), then 503.
    erase_lock_timeout_seconds: float = 20.0
    tls: TlsSettings = field(default_factory=TlsSettings)  # HTTPS when cert and key are set

    def __post_init__(self) -> None:
        # Compared with every request's Content-Length: a bad value would fail each request.
        size = self.max_body_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise UserInputError(
                f"serve.max_body_bytes {size!r}: expected a whole number of bytes, at least 1"
            )

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> ServeSettings:
        names = {f.name for f in fields(cls)} - {"tls"}
        tls = TlsSettings.from_cfg(cfg.get("tls"))
        return cls(**{k: cfg[k] for k in names if k in cfg}, tls=tls)


@dataclass(frozen=True)
class ServicePaths:
    """The files the service and erasure read and write (`cfg.paths`, `cfg.tracking`)."""

    store: Path = Path("data/dedup/store.duckdb")
    records: Path = Path("data/dedup/records.parquet")
    erasures: Path = Path("data/erasures.txt")
    index_dir: Path = Path("data/index")
    service_db: Path = Path("data/service.duckdb")
    embed_cache: Path = Path("data/cache/embeddings")
    feedback: Path = Path("data/feedback.parquet")
    judgments: Path = Path("data/judgments.parquet")  # relevance grades: `stats feedback`
    corrections: Path = Path("data/corrections.jsonl")  # reviewed labels (labels review)
    reports: Path = Path("reports")
    # One writer at a time over everything above (pipeline/service/writer.py).
    writer_lock: Path = Path("data/.writer.lock")
    # Unfinished erasures, one file per user (pipeline/service/journal.py).
    erasure_journal: Path = Path("data/erasures.pending")
    mlruns: Path = Path("mlruns")  # the local MLflow artifact store, if any

    @classmethod
    def from_cfg(
        cls, cfg: Mapping[str, Any], tracking: Mapping[str, Any] | None = None
    ) -> ServicePaths:
        """From `cfg.paths` (keys added later fall back to their defaults) and `cfg.tracking`."""
        names = [f.name for f in fields(cls) if f.name != "mlruns"]
        values = {name: Path(cfg[name]) for name in names if name in cfg}
        uri = str((tracking or {}).get("uri", "sqlite:///mlflow.db"))
        return cls(**values, mlruns=_artifact_dir(uri))

    def under(self, root: Path) -> ServicePaths:
        """The same layout below `root` (tests, or a server started elsewhere)."""
        return ServicePaths(*(root / getattr(self, f.name) for f in fields(self)))


def _artifact_dir(uri: str) -> Path:
    """Where a local tracking store keeps artifacts: `mlruns/` beside a sqlite file (as
    pipeline.tracking sets it), or the directory of a file store. A server (`env:` or a
    URL) keeps its own: `mlruns/` then names no store, and erasure scrubs none there."""
    if uri.startswith("env:"):
        return Path("mlruns")
    for prefix in ("sqlite:///", "file://", "file:"):
        if uri.startswith(prefix):
            rest = Path(uri[len(prefix) :])
            return rest.parent / "mlruns" if prefix == "sqlite:///" else rest
    return Path(uri) if "://" not in uri else Path("mlruns")
