"""The HTTP API: `create_app(config)` builds a FastAPI app over the same search code as the CLI.

Endpoint handlers (pipeline/api/routes/, one router per area) are plain `def`: FastAPI runs
them in its thread pool, and the searcher, the store reader and the key cache are thread-safe.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pipeline.api import docs, errors
from pipeline.api.guard import RequestGuard
from pipeline.api.routes import (
    admin,
    erase,
    feedback,
    health,
    labels,
    monitor,
    predict,
    rag,
    records,
    search,
)
from pipeline.api.state import ServiceConfig, ServiceState
from pipeline.errors import PipelineError

log = logging.getLogger("pipeline.serve")
ROUTERS = (health, search, records, feedback, admin, erase, labels, predict, monitor, rag)


def create_app(config: ServiceConfig, state: ServiceState | None = None) -> FastAPI:
    """The FastAPI app; `state` is injectable so tests can open it on files in tmp_path."""
    service = state or ServiceState(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _complete_erasures(config)
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="prompt-pipeline search",
        version="0.1.0",
        description="Search, read and give feedback on curated prompt/response records. "
        "Send an API key as `Authorization: Bearer <key>` (created with `pipeline keys create`).",
        lifespan=lifespan,
        docs_url=None,  # served from the package by pipeline/api/docs.py (works offline)
        redoc_url=None,
    )
    app.state.service = service
    errors.install(app)
    public = {"/health", *docs.install(app), *([app.openapi_url] if app.openapi_url else [])}
    app.add_middleware(
        RequestGuard, keys=service.keys, max_body_bytes=config.serve.max_body_bytes,
        public_paths=public,
    )  # fmt: skip
    for module in ROUTERS:
        app.include_router(module.router)
    return app


def _complete_erasures(config: ServiceConfig) -> None:
    """Finish erasures a killed process left unfinished, unless a writer is at work (it will
    finish them itself); a failure here is logged, not fatal: the next writer retries."""
    from pipeline.service.writer import complete_pending_if_free

    try:
        done = complete_pending_if_free(config.paths, f"pipeline serve (pid {os.getpid()})")
    except PipelineError as exc:
        log.error("unfinished erasures could not be completed at start: %s", exc)
        return
    if done:
        log.warning("completed %d unfinished erasure(s) at start", len(done))
