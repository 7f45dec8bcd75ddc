"""POST /labels/{record_id}/review: accept, correct or dismiss a flagged label, by a writer key."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from pipeline.api.deps import Service, Writer, store_cursor
from pipeline.api.routes import RESPONSES
from pipeline.dedup.corrections import MAX_LABEL
from pipeline.labels.review import decide, issues_path

router = APIRouter(tags=["labels"])


class ReviewRequest(BaseModel):
    """One decision; `label` is required for correct, optional for accept (default: the
    suggestion of the last `pipeline labels issues`), refused for dismiss."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["accept", "correct", "dismiss"]
    label: str | None = Field(default=None, min_length=1, max_length=MAX_LABEL)


class ReviewResponse(BaseModel):
    id: str
    action: str
    label: str | None
    previous_label: str | None
    by: str
    at: str


@router.post(
    "/labels/{record_id}/review", response_model=ReviewResponse, status_code=201,
    responses=RESPONSES,
)  # fmt: skip
def review(
    record_id: str, body: ReviewRequest, principal: Writer, service: Service
) -> ReviewResponse:
    """Append the decision to the corrections file (the next `dvc repro` applies it), with
    the key's name as who decided; the record must be in the key's scope."""
    paths = service.config.paths
    with store_cursor(service) as cur:
        out = decide(
            cur, principal.scope, paths.corrections, issues_path(paths.embed_cache.parent),
            record_id, body.action, body.label, f"key:{principal.name}",
            lock_timeout=service.config.serve.lock_timeout_seconds,
        )  # fmt: skip
    return ReviewResponse(**out)
