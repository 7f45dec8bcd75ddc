"""POST /feedback: a score or thumb on a record in the key's scope, by a writer key.
POST /judgments: relevance grades (0-3) of the records a logged search returned."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from pipeline.api.deps import Service, Writer, store_reader
from pipeline.api.models import FeedbackRequest, FeedbackResponse, RecordId, _Strict
from pipeline.api.routes import RESPONSES
from pipeline.service.feedback import give_feedback
from pipeline.service.judgments import judge

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


class Grade(_Strict):
    record_id: RecordId
    grade: int = Field(ge=0, le=3, description="0 not relevant, 1 marginal, 2 relevant, 3 highly")


class JudgmentRequest(_Strict):
    query_id: str = Field(min_length=1, max_length=64, description="a search response's query_id")
    grades: list[Grade] = Field(min_length=1, max_length=100)


class Judgment(BaseModel):
    judgment_id: int
    query_id: str
    record_id: str
    grade: int
    created_at: str


class JudgmentResponse(BaseModel):
    judgments: list[Judgment]


@router.post("/judgments", response_model=JudgmentResponse, status_code=201, responses=RESPONSES)
def judgments(body: JudgmentRequest, principal: Writer, service: Service) -> JudgmentResponse:
    """Grade the results of a logged search (its response's `query_id`): all grades or none."""
    config = service.config
    service.querylog.flush()  # a search answered a moment ago is still in the buffer
    rows = judge(
        config.paths.service_db, store_reader(service), principal, body.query_id,
        [(g.record_id, g.grade) for g in body.grades],
        lock_timeout=config.serve.lock_timeout_seconds,
    )  # fmt: skip
    return JudgmentResponse(
        judgments=[Judgment(**{k: r[k] for k in Judgment.model_fields}) for r in rows]
    )
