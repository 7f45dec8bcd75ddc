"""Confirming or correcting a logged prediction: the true label, by the prediction's id.

Live accuracy in the monitor report is the share of predictions with feedback whose label
equals the latest true label given for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import NotFoundError, UserInputError
from pipeline.service.keys import Principal
from pipeline.service.limits import FILTER_MAX
from pipeline.store import predictions as sql
from pipeline.store import service as db


def label_prediction(
    service_db: str | Path,
    principal: Principal,
    prediction_id: str,
    label: str,
    lock_timeout: float = 10.0,
) -> dict[str, Any]:
    """Store `label` as the truth for a logged prediction (writer keys); NotFoundError when
    no prediction has that id (flush the log first when it may still be buffered)."""
    principal.require("writer")
    label = label.strip()
    if not label or len(label) > FILTER_MAX:
        raise UserInputError(f"label {label[:40]!r}: expected 1 to {FILTER_MAX} characters")
    with db.open_service_db(service_db, lock_timeout=lock_timeout) as con:
        predicted = sql.prediction_label(con, prediction_id)
        if predicted is None:
            raise NotFoundError(f"prediction {prediction_id!r}: not in the prediction log")
        sql.insert_prediction_feedback(
            con,
            {
                "prediction_id": prediction_id,
                "label": label,
                "key_id": principal.key_id,
                "key_name": principal.name,
            },
        )
    return {
        "prediction_id": prediction_id,
        "predicted_label": predicted,
        "label": label,
        "correct": predicted == label,
    }
