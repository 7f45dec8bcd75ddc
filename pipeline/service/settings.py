"""Typed settings of the search service, read from `cfg.serve` and `cfg.paths`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError


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

    def __post_init__(self) -> None:
        # Compared with every request's Content-Length: a bad value would fail each request.
        size = self.max_body_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise UserInputError(
                f"serve.max_body_bytes {size!r}: expected a whole number of bytes, at least 1"
            )

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> ServeSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: cfg[k] for k in names if k in cfg})


@dataclass(frozen=True)
class ServicePaths:
    """The files the service reads and writes (`cfg.paths`)."""

    store: Path = Path("data/dedup/store.duckdb")
    records: Path = Path("data/dedup/records.parquet")
    erasures: Path = Path("data/erasures.txt")
    index_dir: Path = Path("data/index")
    service_db: Path = Path("data/service.duckdb")
    embed_cache: Path = Path("data/cache/embeddings")

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> ServicePaths:
        return cls(
            store=Path(cfg["store"]),
            records=Path(cfg["records"]),
            erasures=Path(cfg["erasures"]),
            index_dir=Path(cfg["index_dir"]),
            service_db=Path(cfg["service_db"]),
            embed_cache=Path(cfg["embed_cache"]),
        )

    def under(self, root: Path) -> ServicePaths:
        """The same layout below `root` (tests, or a server started elsewhere)."""
        return ServicePaths(*(root / getattr(self, f.name) for f in fields(self)))
