"""What a server process holds: the searcher, a store reader, the key cache and the query log,
kept fresh by background threads (one for the index, store and log; one for the keys).

A republished index or a replaced store (an erasure, `dvc repro`) is opened beside the
current one and swapped in by assignment (the Searcher's own reload): requests in flight
finish on what they hold and none waits, so no gate is needed. The replaced store
connection is dropped, never closed: DuckDB closes a connection's cursors with it, and a
request may still read one; it goes when its last reader lets go. tests/test_serve_swap.py
runs requests through repeated republishes and fails if a swap closes what they read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.errors import PipelineError
from pipeline.monitor.log import PredictionLog
from pipeline.monitor.reference import ReferenceCache
from pipeline.monitor.settings import MonitorSettings
from pipeline.service.keys import KeyCache
from pipeline.service.model import ServedModel
from pipeline.service.querylog import QueryLog
from pipeline.service.settings import ServeSettings, ServicePaths
from pipeline.store.lookup import StoreReader

log = logging.getLogger("pipeline.serve")


@dataclass(frozen=True)
class ServiceConfig:
    """The slices of the composed config a server needs."""

    serve: ServeSettings = field(default_factory=ServeSettings)
    paths: ServicePaths = field(default_factory=ServicePaths)
    search: Mapping[str, Any] = field(default_factory=dict)  # cfg.search, for the Searcher
    embed: Mapping[str, Any] = field(default_factory=dict)  # cfg.embed
    monitor: Mapping[str, Any] = field(default_factory=dict)  # cfg.monitor
    # cfg.predict, evaluate, tracking and paths: what Predictor.load reads (POST /predict)
    predict: Mapping[str, Any] = field(default_factory=dict)
    root: Path = Path()  # the project root the relative paths of `predict` are under
    rag: Mapping[str, Any] = field(default_factory=dict)  # cfg.rag, for POST /rag

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> ServiceConfig:
        def plain(key: str) -> dict:
            node = OmegaConf.select(cfg, key, default=None)
            return OmegaConf.to_container(node, resolve=True) if node is not None else {}

        return cls(
            serve=ServeSettings.from_cfg(plain("serve")),
            paths=ServicePaths.from_cfg(plain("paths"), plain("tracking")),
            search=plain("search"),
            embed=plain("embed"),
            monitor=plain("monitor"),
            predict={k: plain(k) for k in ("predict", "evaluate", "tracking", "paths")},
            rag=plain("rag"),
        )


def searcher_for(config: ServiceConfig) -> Any:
    """The service's Searcher, from the one factory (imported here: it loads FAISS)."""
    from pipeline.search.project import open_searcher as open_from_sections

    paths = config.paths
    return open_from_sections(
        paths.index_dir, paths.store, paths.embed_cache, config.search, config.embed
    )


class ServiceState:
    """Everything one server process shares between requests."""

    def __init__(
        self,
        config: ServiceConfig,
        searcher_factory: Callable[[ServiceConfig], Any] = searcher_for,
    ) -> None:
        self.config = config
        paths, serve = config.paths, config.serve
        self.keys = KeyCache(
            paths.service_db, ttl=serve.key_cache_seconds, lock_timeout=serve.lock_timeout_seconds
        )
        self.querylog = QueryLog(paths.service_db, lock_timeout=serve.lock_timeout_seconds)
        self.store = StoreReader(paths.store, check_seconds=serve.reload_seconds)
        self.model = ServedModel(config.predict, config.root)
        monitor = MonitorSettings.from_cfg(config.monitor)
        self.predictions = PredictionLog(
            paths.service_db, embedder=_log_embedder(config),
            projection_dims=monitor.projection_dims, seed=monitor.seed,
            log_text=monitor.log_text, lock_timeout=serve.lock_timeout_seconds,
        )  # fmt: skip
        # The log's encoder (model, backend, max_length): a predictor that runs the same
        # export hands its vectors to the log, which then does not encode the input again.
        from pipeline.embed.api import EmbedSettings

        embed = EmbedSettings.from_cfg(config.embed)
        self.log_encoder = (embed.model, embed.backend, embed.max_length)
        self.monitor_reference = ReferenceCache()  # GET /monitor's, per records.parquet
        self._factory = searcher_factory
        self._searcher: Any = None
        self.searcher_error: str | None = "the index has not been opened yet"
        self._open_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the searcher -------------------------------------------------------------------

    def _open_searcher(self) -> None:
        with self._open_lock:
            if self._searcher is not None:  # another thread opened it meanwhile
                return
            try:
                searcher = self._factory(self.config)
            except (PipelineError, ImportError) as exc:
                self.searcher_error = str(exc)
                return
            self._searcher = searcher
            self.searcher_error = None

    def searcher(self) -> Any:
        """The current searcher, or None while no index can be opened (see searcher_error)."""
        if self._searcher is None:
            self._open_searcher()
        return self._searcher

    def refresh(self, force: bool = False) -> None:
        """Pick up a republished index or a replaced store (erasure, `dvc repro`)."""
        current = self._searcher
        if current is None:
            self._open_searcher()
        else:
            try:
                current.reload_if_changed()
            except PipelineError as exc:  # a half-published index: keep serving the old one
                log.warning("reload failed, still serving the previous index: %s", exc)
        try:
            self.store.refresh(force=force)
        except PipelineError as exc:
            log.warning("store reload failed: %s", exc)
        if self.config.predict:
            self.model.refresh()  # a moved champion alias: load beside, swap by assignment

    # --- background maintenance ---------------------------------------------------------

    def _loop(self) -> None:
        serve = self.config.serve
        next_reload = next_flush = time.monotonic()
        tick = min(serve.reload_seconds, serve.log_flush_seconds) / 2
        while not self._stop.wait(tick):
            now = time.monotonic()
            try:
                if now >= next_reload:
                    self.refresh()
                    next_reload = now + serve.reload_seconds
                if now >= next_flush:
                    self.querylog.flush()
                    self.predictions.flush()
                    next_flush = now + serve.log_flush_seconds
            except Exception:  # the loop must outlive any one failure; the log says which
                log.exception("service maintenance failed; retrying")

    def start(self) -> None:
        """Open what can be opened and start the maintenance and key refresh threads."""
        # Keys have their own thread: a query log flush waiting for a busy service DB must
        # not hold back the key set (nor index reloads hold back keys).
        self.keys.start()
        self.searcher()
        if self.config.predict and self.model.current() is None:
            log.warning("POST /predict unavailable until a champion is registered: %s",
                        self.model.error)  # fmt: skip
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="serve-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write the remaining query log."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.keys.stop()
        self.querylog.flush()
        self.predictions.flush()
        self.store.close()
        if self._searcher is not None:  # no request is left to read it
            self._searcher.close()
        self._searcher = None


def _log_embedder(config: ServiceConfig) -> Callable[[list[str]], Any] | None:
    """The prediction log's encoder (the search path's ONNX MiniLM), built at first use in
    the maintenance thread; None when the project configures no encoder."""
    from pipeline.embed.api import EmbedSettings

    settings = EmbedSettings.from_cfg(config.embed)
    holder: list[Any] = []

    def embed(texts: list[str]) -> Any:
        if not holder:
            from pipeline.embed.query import QueryEncoder

            holder.append(QueryEncoder(settings, config.paths.embed_cache))
        return holder[0].encode_many(texts)

    return embed
