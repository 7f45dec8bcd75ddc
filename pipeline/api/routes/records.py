"""GET /records/{id} and GET /stats: reads of the store, inside the key's scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam

from pipeline.api.deps import Reader, Service, store_cursor
from pipeline.api.models import ErrorBody, RecordResponse
from pipeline.api.routes import RESPONSES
from pipeline.service.limits import RECORD_ID_MAX
from pipeline.store import lookup

router = APIRouter(tags=["search"])


@router.get(
    "/records/{record_id:path}",
    response_model=RecordResponse,
    responses={**RESPONSES, 404: {"model": ErrorBody, "description": "no such record"}},
)
def read_record(
    record_id: Annotated[str, PathParam(max_length=RECORD_ID_MAX)],
    principal: Reader,
    service: Service,
) -> RecordResponse:
    """One record by id (or rid), with its session's turns and its removed duplicates."""
    with store_cursor(service) as cur:
        return RecordResponse(**lookup.read_record(cur, record_id, principal.scope))


@router.get("/stats", responses=RESPONSES)
def stats(principal: Reader, service: Service) -> dict[str, Any]:
    """Record counts (by label, origin, source) inside the key's scope."""
    with store_cursor(service) as cur:
        counts = lookup.store_counts(cur, principal.scope)
    counts["scoped"] = principal.scope.restricted
    return counts
