"""Admin endpoints: API keys (list, create, revoke) and the query-log usage report."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from pipeline.api.deps import Admin, Service
from pipeline.api.models import KeyCreateRequest, KeyCreateResponse, KeyInfo
from pipeline.api.routes import RESPONSES
from pipeline.service import keys as key_admin
from pipeline.service.limits import KEY_ID_MAX
from pipeline.service.querylog import usage_report

router = APIRouter(tags=["admin"], responses=RESPONSES)


@router.get("/usage")
def usage(
    _: Admin, service: Service, top: Annotated[int, Query(ge=1, le=1000)] = 10
) -> dict[str, Any]:
    """Query log summary: per day, latency percentiles, zero-result, most returned."""
    service.querylog.flush()
    report = usage_report(service.config.paths.service_db, top)
    return json.loads(json.dumps(report, default=str))


@router.get("/keys", response_model=list[KeyInfo])
def list_keys(_: Admin, service: Service) -> list[dict[str, Any]]:
    """Every key with its role and scope (never the key or its hash)."""
    return key_admin.list_keys(service.config.paths.service_db)


@router.post("/keys", response_model=KeyCreateResponse, status_code=201)
def create_key(body: KeyCreateRequest, principal: Admin, service: Service) -> dict[str, Any]:
    """Create a key; the response is the only time the key is shown."""
    scope = {f: v for f, v in body.scope.model_dump().items() if v}
    key, row = key_admin.create_key(
        service.config.paths.service_db, body.role, body.name, scope, f"key:{principal.key_id}"
    )
    service.keys.reload()
    return {**row, "key": key}


@router.delete("/keys/{key_id}")
def revoke_key(
    key_id: Annotated[str, PathParam(max_length=KEY_ID_MAX)], _: Admin, service: Service
) -> dict[str, str]:
    """Revoke a key; it stops working within `serve.key_cache_seconds`."""
    key_admin.revoke_key(service.config.paths.service_db, key_id)
    service.keys.reload()
    return {"revoked": key_id}
