"""The HTTP API: `create_app(config)` builds a FastAPI app over the same search code as the CLI.

Endpoint handlers are plain `def`: FastAPI runs them in its thread pool, and the searcher,
the store reader and the key cache are thread-safe.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi import Path as PathParam

from pipeline.errors import NotFoundError, PipelineError
from pipeline.serve import errors
from pipeline.serve.auth import Admin, Caller, Reader, Writer, forbid_out_of_scope
from pipeline.serve.guard import RequestGuard
from pipeline.serve.models import (
    EraseRequest,
    EraseResponse,
    ErrorBody,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    KeyCreateRequest,
    KeyCreateResponse,
    KeyInfo,
    RecordResponse,
    SearchRequest,
    SearchResponse,
)
from pipeline.serve.state import ServiceConfig, ServiceState
from pipeline.service import keys as key_admin
from pipeline.service.erasure import erase_user
from pipeline.service.feedback import add_feedback
from pipeline.service.keys import Principal
from pipeline.service.limits import KEY_ID_MAX, RECORD_ID_MAX
from pipeline.service.querylog import usage_report
from pipeline.store import lookup

log = logging.getLogger("pipeline.serve")
_ERRORS = {401: "missing or invalid API key", 403: "role or scope does not allow this"}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in _ERRORS.items()
}


def _scope_conditions(principal: Principal) -> tuple:
    from pipeline.search.filters import Condition

    return tuple(Condition(f, "in", values) for f, values in sorted(principal.scope.items()))


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
    )
    app.state.service = service
    errors.install(app)
    docs = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    app.add_middleware(
        RequestGuard, keys=service.keys, max_body_bytes=config.serve.max_body_bytes,
        public_paths={"/health", *(path for path in docs if path)},
    )  # fmt: skip

    def store_cursor() -> Any:
        """A store cursor for one request; 503 (not 404) while no store has been built."""
        try:
            service.store.refresh()
        except NotFoundError as exc:
            raise HTTPException(503, f"store not available: {exc}") from exc
        return service.store.cursor()

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        """Liveness and readiness; the only endpoint without a key."""
        searcher = service.searcher()
        store = config.paths.store.exists()
        ok = searcher is not None and store
        return Health(
            status="ok" if ok else "degraded",
            index=searcher is not None,
            store=store,
            detail=None if ok else (service.searcher_error or "no store yet"),
        )

    @app.post("/search", response_model=SearchResponse, responses=_RESPONSES, tags=["search"])
    def search(body: SearchRequest, principal: Reader) -> SearchResponse:
        """Vector, keyword or hybrid search, with filters, inside the key's scope."""
        from pipeline.search.filters import parse_filter

        started = time.perf_counter()
        status, rids = 200, []
        try:
            conditions = tuple(parse_filter(f) for f in body.filters)
            with service.searching() as searcher:
                if searcher is None:
                    raise HTTPException(503, f"index not available: {service.searcher_error}")
                try:
                    results = searcher.search(
                        body.text,
                        k=body.k,
                        mode=body.mode,
                        filters=conditions,
                        scope=_scope_conditions(principal),
                        with_session=body.with_session,
                    )
                except NotFoundError as exc:  # e.g. no query encoder exported: not the caller's
                    raise HTTPException(503, f"search not available: {exc}") from exc
            items = [r.to_dict() for r in results]
            if principal.scope:
                for item in items:  # session turns obey the key's scope like the hits do
                    if item.get("session") is not None:
                        item["session"] = [t for t in item["session"] if principal.sees(t)]
            rids = [item["rid"] for item in items]
        except PipelineError as exc:
            status = errors.status_of(exc)
            raise
        except HTTPException as exc:
            status = exc.status_code
            raise
        except Exception:
            status = 500
            raise
        finally:
            took = (time.perf_counter() - started) * 1000
            service.querylog.record(
                principal.key_id, principal.name, body.text, body.filters, body.mode, body.k,
                rids, took, status,
            )  # fmt: skip
        return SearchResponse(results=items, took_ms=took, mode=body.mode, k=body.k)

    @app.get(
        "/records/{record_id:path}",
        response_model=RecordResponse,
        responses={**_RESPONSES, 404: {"model": ErrorBody, "description": "no such record"}},
        tags=["search"],
    )
    def read_record(
        record_id: Annotated[str, PathParam(max_length=RECORD_ID_MAX)], principal: Reader
    ) -> RecordResponse:
        """One record by id (or rid), with its session's turns and its removed duplicates."""
        with store_cursor() as cur:
            record = lookup.get_record(cur, record_id)
            if record is None:
                raise NotFoundError(f"record {record_id!r} not found")
            forbid_out_of_scope(principal, record)
            session = (
                lookup.session_turns(cur, record["session_id"], principal.scope)
                if record.get("session_id")
                else []
            )
            duplicates = lookup.duplicates_of(cur, record["rid"], principal.scope)
        return RecordResponse(record=record, session=session, duplicates=duplicates)

    @app.post(
        "/feedback", response_model=FeedbackResponse, status_code=201, responses=_RESPONSES,
        tags=["feedback"],
    )  # fmt: skip
    def feedback(body: FeedbackRequest, principal: Writer) -> FeedbackResponse:
        """A 1-5 score or a thumb up/down on a record, stored with the key's identity."""
        with store_cursor() as cur:
            record = lookup.get_record(cur, body.record_id)
        if record is None:
            raise NotFoundError(f"record {body.record_id!r} not found")
        forbid_out_of_scope(principal, record)
        row = add_feedback(
            config.paths.service_db, principal, record, body.kind, body.score, body.comment,
            lock_timeout=config.serve.lock_timeout_seconds,
        )  # fmt: skip
        return FeedbackResponse(**{k: row[k] for k in FeedbackResponse.model_fields})

    @app.get("/stats", responses=_RESPONSES, tags=["search"])
    def stats(principal: Reader) -> dict[str, Any]:
        """Record counts (by label, origin, source) inside the key's scope."""
        with store_cursor() as cur:
            counts = lookup.store_counts(cur, principal.scope)
        counts["scoped"] = bool(principal.scope)
        return counts

    @app.get("/usage", responses=_RESPONSES, tags=["admin"])
    def usage(_: Admin, top: Annotated[int, Query(ge=1, le=1000)] = 10) -> dict[str, Any]:
        """Query log summary: per day, latency percentiles, zero-result, most returned."""
        service.querylog.flush()
        return json.loads(json.dumps(usage_report(config.paths.service_db, top), default=str))

    @app.get("/keys", response_model=list[KeyInfo], responses=_RESPONSES, tags=["admin"])
    def list_keys(_: Admin) -> list[dict[str, Any]]:
        """Every key with its role and scope (never the key or its hash)."""
        return key_admin.list_keys(config.paths.service_db)

    @app.post(
        "/keys", response_model=KeyCreateResponse, status_code=201, responses=_RESPONSES,
        tags=["admin"],
    )  # fmt: skip
    def create_key(body: KeyCreateRequest, principal: Admin) -> dict[str, Any]:
        """Create a key; the response is the only time the key is shown."""
        scope = {f: v for f, v in body.scope.model_dump().items() if v}
        key, row = key_admin.create_key(
            config.paths.service_db, body.role, body.name, scope, f"key:{principal.key_id}"
        )
        service.keys.reload()
        return {**row, "key": key}

    @app.delete("/keys/{key_id}", responses=_RESPONSES, tags=["admin"])
    def revoke_key(
        key_id: Annotated[str, PathParam(max_length=KEY_ID_MAX)], _: Admin
    ) -> dict[str, str]:
        """Revoke a key; it stops working within `serve.key_cache_seconds`."""
        key_admin.revoke_key(config.paths.service_db, key_id)
        service.keys.reload()
        return {"revoked": key_id}

    @app.post(
        "/erase", response_model=EraseResponse,
        responses={**_RESPONSES, 503: {"model": ErrorBody,
                                       "description": "a writer is busy; nothing erased yet"}},
        tags=["admin"],
    )  # fmt: skip
    def erase(body: EraseRequest, principal: Admin) -> Any:
        """Erase a user's records everywhere; records who erased how many, never what.

        Waits up to `serve.erase_lock_timeout_seconds` for a running dedup or index build,
        then answers 503 with Retry-After: nothing has been erased then."""
        service.querylog.flush()  # buffered rows must be scrubbed of the erased ids too

        def waiting(holder: str) -> None:
            log.warning("POST /erase: waiting for the writer lock held by %s", holder)

        row = erase_user(
            config.paths, body.user_id, f"key:{principal.key_id}",
            wait=config.serve.erase_lock_timeout_seconds, on_wait=waiting,
        )  # fmt: skip
        service.refresh(force=True)
        return row

    @app.get("/whoami", tags=["service"])
    def whoami(principal: Caller) -> dict[str, Any]:
        """The calling key's id, name, role and scope."""
        return {
            "key_id": principal.key_id,
            "name": principal.name,
            "role": principal.role,
            "scope": {k: list(v) for k, v in principal.scope.items()},
            "pid": os.getpid(),
        }

    return app
