"""POST /feedback: a score or thumb on a record in the key's scope, by a writer key."""

from __future__ import annotations

from fastapi import APIRouter

from pipeline.api.deps import Service, Writer, store_reader
from pipeline.api.models import FeedbackRequest, FeedbackResponse
from pipeline.api.routes import RESPONSES
from pipeline.service.feedback import give_feedback

router = APIRouter(tags=["feedback"])


@router.post("/feedback", response_model=FeedbackResponse, status_code=201, responses=RESPONSES)
def feedback(body: FeedbackRequest, principal: Writer, service: Service) -> FeedbackResponse:
    """A 1-5 score or a thumb up/down on a record, stored with the key's identity."""
    config = service.config
    row = give_feedback(
        config.paths.service_db, store_reader(service), principal, body.record_id, body.kind,
        body.score, body.comment, lock_timeout=config.serve.lock_timeout_seconds,
    )  # fmt: skip
    return FeedbackResponse(**{k: row[k] for k in FeedbackResponse.model_fields})
