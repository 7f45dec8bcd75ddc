"""POST /rag: grounded context for a generator, inside the key's scope, optionally answered;
logged like a search, so its `query_id` can be judged."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from pipeline.api.deps import Reader, Service
from pipeline.api.models import RagRequest
from pipeline.api.querylogged import logged_query
from pipeline.api.routes import RESPONSES
from pipeline.errors import NotFoundError

router = APIRouter(tags=["rag"])


@router.post("/rag", responses=RESPONSES)
def rag(body: RagRequest, principal: Reader, service: Service) -> dict[str, Any]:
    """Retrieved records packed into a prompt with numbered citations (and an answer)."""
    from pipeline.rag import RagSettings

    settings = RagSettings.from_cfg(service.config.rag)
    k = body.k or settings.candidates
    # Logged as mode `rag:<retrieval mode>`; its results are the cited records, which
    # POST /judgments can then grade by the response's query_id.
    with logged_query(
        service, principal, body.question, body.filters, f"rag:{settings.mode}", k
    ) as log:
        out = _rag(body, principal, service, settings)
        log.rids = [c["rid"] for c in out["citations"]]
    out["query_id"] = log.query_id
    return out


def _rag(body: RagRequest, principal: Reader, service: Service, settings: Any) -> dict[str, Any]:
    from pipeline.rag import build_context
    from pipeline.rag.generate import GeneratorError, generate
    from pipeline.search.filters import parse_filter

    conditions = tuple(parse_filter(f) for f in body.filters)
    searcher = service.searcher()
    if searcher is None:
        raise HTTPException(503, f"index not available: {service.searcher_error}")
    try:
        context = build_context(
            searcher, body.question, settings, scope=principal.scope, filters=conditions,
            candidates=body.k, budget=body.budget,
        )  # fmt: skip
    except NotFoundError as exc:  # e.g. no query encoder exported: not the caller's
        raise HTTPException(503, f"search not available: {exc}") from exc
    out = context.to_dict()
    if body.generate:
        try:
            out["answer"] = generate(context, settings.generator).to_dict()
        except GeneratorError as exc:
            raise HTTPException(502, str(exc)) from exc
    return out
