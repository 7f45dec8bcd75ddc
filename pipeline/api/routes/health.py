"""GET /health (no key) and GET /whoami: is the service ready, and who is calling."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter

from pipeline.api.deps import Caller, Service
from pipeline.api.models import Health

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
def health(service: Service) -> Health:
    """Liveness and readiness; the only endpoint without a key."""
    searcher = service.searcher()
    store = service.config.paths.store.exists()
    ok = searcher is not None and store
    return Health(
        status="ok" if ok else "degraded",
        index=searcher is not None,
        store=store,
        detail=None if ok else (service.searcher_error or "no store yet"),
    )


@router.get("/whoami")
def whoami(principal: Caller) -> dict[str, Any]:
    """The calling key's id, name, role and scope."""
    return {
        "key_id": principal.key_id,
        "name": principal.name,
        "role": principal.role,
        "scope": {field: list(values) for field, values in principal.scope.items()},
        "pid": os.getpid(),
    }
