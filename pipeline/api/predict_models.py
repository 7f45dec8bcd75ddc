"""Request and response bodies of POST /predict, the prediction feedback and GET /monitor."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from pipeline.api.models import _Strict
from pipeline.service import limits

PredictText = Annotated[str, StringConstraints(min_length=1, max_length=limits.PREDICT_TEXT_MAX)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=limits.FILTER_MAX)]


class PredictRequest(_Strict):
    text: PredictText | None = Field(default=None, description="one text to classify")
    texts: list[PredictText] | None = Field(
        default=None,
        min_length=1,
        max_length=limits.PREDICT_BATCH_MAX,
        description=f"or up to {limits.PREDICT_BATCH_MAX} texts, answered in order",
    )

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("send either `text` or `texts`")
        return self

    @field_validator("text", "texts")
    @classmethod
    def _readable(cls, value: Any) -> Any:
        for i, text in enumerate([value] if isinstance(value, str) else value or []):
            if not text.strip():
                raise ValueError(f"text {i} is blank")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate sent as a \\ud800 escape
                raise ValueError(
                    f"text {i} is not valid UTF-8 (at character {exc.start})"
                ) from None
        return value

    def all_texts(self) -> list[str]:
        """The texts to classify, in order."""
        return [self.text] if self.text is not None else list(self.texts or [])


class PredictionOut(BaseModel):
    prediction_id: str = Field(description="confirm or correct it: POST /predictions/{id}/feedback")
    label: str
    confidence: float
    probabilities: dict[str, float]
    truncated: bool = Field(description="the text was longer than the model reads and was cut")


class ModelOut(BaseModel):
    name: str
    version: str


class PredictResponse(BaseModel):
    predictions: list[PredictionOut]
    model: ModelOut
    took_ms: float


class PredictionFeedbackRequest(_Strict):
    label: Label = Field(description="the true label: the predicted one confirms, another corrects")


class PredictionFeedbackResponse(BaseModel):
    prediction_id: str
    predicted_label: str
    label: str
    correct: bool
