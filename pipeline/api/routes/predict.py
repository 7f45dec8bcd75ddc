"""POST /predict: the champion's label, confidence and distribution for texts, every one
logged for the monitor; POST /predictions/{id}/feedback confirms or corrects one."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam

from pipeline.api.deps import Reader, Service, Writer
from pipeline.api.predict_models import (
    PredictionFeedbackRequest,
    PredictionFeedbackResponse,
    PredictRequest,
    PredictResponse,
)
from pipeline.api.routes import RESPONSES
from pipeline.monitor.feedback import label_prediction

router = APIRouter(tags=["predict"])
_ID = Annotated[str, PathParam(min_length=1, max_length=64)]


@router.post("/predict", response_model=PredictResponse, responses=RESPONSES)
def predict(body: PredictRequest, principal: Reader, service: Service) -> PredictResponse:
    """Classify one text or a batch with the served model (the registry's champion)."""
    started = time.perf_counter()
    predictor = service.model.current()  # held to the end: a swap meanwhile does not touch it
    if predictor is None:
        raise HTTPException(503, f"no model to serve: {service.model.error}")
    texts = body.all_texts()
    # The monitoring log embeds each input; a model that read the same vectors gives them.
    if predictor.encodes_like(*service.log_encoder):
        predictions, vectors = predictor.predict_and_embed(texts)
    else:
        predictions, vectors = predictor.predict(texts), None
    took = (time.perf_counter() - started) * 1000
    out = []
    for i, (text, p) in enumerate(zip(texts, predictions, strict=True)):
        prediction_id = uuid.uuid4().hex
        service.predictions.record(
            prediction_id, principal.key_id, predictor.name, predictor.version, text,
            p.label, p.confidence, took, p.truncated,
            embedding=None if vectors is None else vectors[i],
        )  # fmt: skip
        out.append({"prediction_id": prediction_id, **p.to_dict()})
    model = {"name": predictor.name, "version": str(predictor.version)}
    return PredictResponse(predictions=out, model=model, took_ms=took)


@router.post(
    "/predictions/{prediction_id}/feedback",
    response_model=PredictionFeedbackResponse,
    status_code=201,
    responses=RESPONSES,
)
def prediction_feedback(
    prediction_id: _ID, body: PredictionFeedbackRequest, principal: Writer, service: Service
) -> PredictionFeedbackResponse:
    """The true label of a prediction (by a writer key): live accuracy in GET /monitor."""
    service.predictions.flush()  # a prediction made a moment ago may still be buffered
    row = label_prediction(
        service.config.paths.service_db, principal, prediction_id, body.label,
        lock_timeout=service.config.serve.lock_timeout_seconds,
    )  # fmt: skip
    return PredictionFeedbackResponse(**row)
