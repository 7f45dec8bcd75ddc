"""POST /search: vector, keyword or hybrid search inside the key's scope, logged."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from pipeline.api.deps import Reader, Service
from pipeline.api.models import SearchRequest, SearchResponse
from pipeline.api.querylogged import logged_query
from pipeline.api.routes import RESPONSES
from pipeline.errors import NotFoundError

router = APIRouter(tags=["search"])


@router.post("/search", response_model=SearchResponse, responses=RESPONSES)
def search(body: SearchRequest, principal: Reader, service: Service) -> SearchResponse:
    """Vector, keyword or hybrid search, with filters, inside the key's scope."""
    with logged_query(service, principal, body.text, body.filters, body.mode, body.k) as log:
        items = _search(body, principal, service)
        log.rids = [item["rid"] for item in items]
    return SearchResponse(
        results=items, took_ms=log.took_ms, mode=body.mode, k=body.k, query_id=log.query_id
    )


def _search(body: SearchRequest, principal: Reader, service: Service) -> list[dict]:
    from pipeline.search.filters import parse_filter

    conditions = tuple(parse_filter(f) for f in body.filters)
    searcher = service.searcher()
    if searcher is None:
        raise HTTPException(503, f"index not available: {service.searcher_error}")
    try:
        results = searcher.search(
            body.text, k=body.k, mode=body.mode, filters=conditions,
            scope=principal.scope, with_session=body.with_session, diversity=body.diversity,
        )  # fmt: skip
    except NotFoundError as exc:  # e.g. no query encoder exported: not the caller's
        raise HTTPException(503, f"search not available: {exc}") from exc
    return [r.to_dict() for r in results]
