"""POST /erase: erase a user's records everywhere (docs/erasure.md), as an admin."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter

from pipeline.api.deps import Admin, Service
from pipeline.api.models import EraseRequest, EraseResponse, ErrorBody
from pipeline.api.routes import RESPONSES
from pipeline.service.erasure import erase_user

log = logging.getLogger("pipeline.serve")
router = APIRouter(tags=["admin"])
_BUSY = {503: {"model": ErrorBody, "description": "a writer is busy; nothing erased yet"}}


@router.post("/erase", response_model=EraseResponse, responses={**RESPONSES, **_BUSY})
def erase(body: EraseRequest, principal: Admin, service: Service) -> Any:
    """Erase a user's records everywhere; records who erased how many, never what.

    Waits up to `serve.erase_lock_timeout_seconds` for a running dedup or index build,
    then answers 503 with Retry-After: nothing has been erased then."""
    service.querylog.flush()  # buffered rows must be scrubbed of the erased ids too

    def waiting(holder: str) -> None:
        log.warning("POST /erase: waiting for the writer lock held by %s", holder)

    config = service.config
    row = erase_user(
        config.paths, body.user_id, f"key:{principal.key_id}",
        wait=config.serve.erase_lock_timeout_seconds, on_wait=waiting,
    )  # fmt: skip
    service.refresh(force=True)
    return row
