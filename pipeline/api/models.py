"""Request and response bodies of the HTTP API; pydantic validates them and documents them
in the OpenAPI schema (`/openapi.json`, `/docs`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_serializer,
    model_validator,
)

from pipeline.api.filter_json import compile_filters
from pipeline.service import limits
from pipeline.store.rows import api_time

Mode = Literal["vector", "keyword", "hybrid"]


# Every string a caller sends has a cap (pipeline/service/limits.py): nothing unbounded
# reaches the search, the store lookups or the query log.
QueryText = Annotated[str, StringConstraints(min_length=1, max_length=limits.QUERY_TEXT_MAX)]
FilterText = Annotated[str, StringConstraints(min_length=1, max_length=limits.FILTER_MAX)]
RecordId = Annotated[str, StringConstraints(min_length=1, max_length=limits.RECORD_ID_MAX)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=limits.USER_ID_MAX)]
ScopeValue = Annotated[str, StringConstraints(min_length=1, max_length=limits.SCOPE_VALUE_MAX)]
# Filter strings, or objects in the JSON form compiled to their strings (api/filter_json.py).
# The schema says both forms, so /docs and generated clients do not reject the JSON form.
_FILTER_OBJECT = {
    "type": "object",
    "description": 'a condition {"field": ..., "op": ..., "value": ...} or a group '
    '{"and": [...]}, {"or": [...]}, {"not": {...}} of such objects',
    "minProperties": 1,
}
Filters = Annotated[
    list[FilterText],
    BeforeValidator(compile_filters),
    WithJsonSchema(
        {
            "type": "array",
            "maxItems": limits.FILTERS_MAX,
            "items": {
                "anyOf": [
                    {"type": "string", "minLength": 1, "maxLength": limits.FILTER_MAX},
                    _FILTER_OBJECT,
                ]
            },
        }
    ),
]


class _Strict(BaseModel):
    # An unknown field is a typo the caller wants to hear about, not silently ignore; NaN
    # and Infinity are valid JSON to Python but never a valid score.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SearchRequest(_Strict):
    text: QueryText = Field(description="the query text")
    k: int = Field(default=10, ge=1, le=100, description="how many results")
    mode: Mode = "hybrid"
    filters: Filters = Field(
        default_factory=list,
        max_length=limits.FILTERS_MAX,
        description="as in the CLI, ANDed: `label=support`, `quality>=4`, "
        "`metadata.app_version=2.1`, `label=a OR label=b`, `NOT origin=synthetic`; or the "
        'JSON form: {"field": "label", "op": "=", "value": "a"}, {"and": [...]}, '
        '{"or": [...]}, {"not": {...}}',
        examples=[["label=support"]],
    )
    with_session: bool = Field(default=False, description="attach each result's session turns")
    diversity: Literal["none", "session", "mmr"] | None = Field(
        default=None, description="one hit per conversation, or MMR; default search.diversity"
    )

    @model_validator(mode="after")
    def _text_not_blank(self) -> SearchRequest:
        if not self.text.strip():
            raise ValueError("text must not be blank")
        return self


class SearchResponse(BaseModel):
    results: list[dict[str, Any]]
    took_ms: float
    mode: Mode
    k: int
    query_id: str | None = Field(
        default=None, description="names this search to grade its results: POST /judgments"
    )


class RecordResponse(BaseModel):
    status: str = Field("kept", description="kept, or filtered by a quality filter")
    record: dict[str, Any]
    session: list[dict[str, Any]] = Field(description="the session's turns (in the key's scope)")
    duplicates: list[dict[str, Any]] = Field(description="removed duplicates of this record")
    filtered: dict[str, Any] | None = Field(
        None, description="why a filtered record was dropped: filter, value, threshold, bound"
    )
    label_corrections: list[dict[str, Any]] = Field(
        [], description="the reviewed-label decision: labels, action, corrected_by, corrected_at"
    )

    @field_serializer("record")
    def _record_times(self, record: dict[str, Any]) -> dict[str, Any]:
        # The store gives datetimes; the API writes one ISO text, as search hits do.
        return {**record, "created_at": api_time(record.get("created_at"))}

    @field_serializer("session", "duplicates")
    def _list_times(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self._record_times(row) for row in rows]


class FeedbackRequest(_Strict):
    record_id: RecordId
    score: float | None = Field(default=None, ge=1, le=5, description="1 (bad) to 5 (good)")
    thumb: Literal["up", "down"] | None = None
    comment: str | None = Field(default=None, max_length=limits.COMMENT_MAX)

    @model_validator(mode="after")
    def _one_signal(self) -> FeedbackRequest:
        if (self.score is None) == (self.thumb is None):
            raise ValueError("send exactly one of `score` (1-5) or `thumb` (up|down)")
        return self

    @property
    def kind(self) -> str:
        return "score" if self.score is not None else str(self.thumb)


class FeedbackResponse(BaseModel):
    feedback_id: int
    record_id: str
    kind: str
    score: float
    created_at: str


class KeyScope(_Strict):
    user_id: list[ScopeValue] | None = Field(
        default=None, min_length=1, max_length=limits.SCOPE_VALUES_MAX
    )
    source: list[ScopeValue] | None = Field(
        default=None, min_length=1, max_length=limits.SCOPE_VALUES_MAX
    )


class KeyCreateRequest(_Strict):
    role: Literal["reader", "writer", "admin"]
    name: str | None = Field(default=None, min_length=1, max_length=limits.NAME_MAX)
    scope: KeyScope = Field(default_factory=KeyScope)


class KeyInfo(BaseModel):
    key_id: str
    name: str
    role: str
    scope_user_ids: list[str] | None = None
    scope_sources: list[str] | None = None
    created_at: Any
    created_by: str
    revoked_at: Any = None


class KeyCreateResponse(KeyInfo):
    key: str = Field(description="the API key; shown only in this response")


class EraseRequest(_Strict):
    user_id: UserId


class EraseResponse(BaseModel):
    erased_at: str
    erased_by: str
    user_hash: str
    records: int
    duplicates: int
    preferences: int
    pii_redactions: int
    rejected: int
    feedback: int
    index_removed: int
    parquet_rows: int


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    index: bool
    store: bool
    detail: str | None = None


class ErrorBody(BaseModel):
    detail: str


class RagRequest(_Strict):
    """POST /rag (docs/rag.md): the question is validated like a search query."""

    question: QueryText = Field(description="the question to ground")
    k: int | None = Field(default=None, ge=1, le=100, description="hits to retrieve")
    budget: int | None = Field(
        default=None, ge=1, le=1_000_000, description="token budget of the filled prompt"
    )
    filters: Filters = Field(
        default_factory=list, max_length=limits.FILTERS_MAX, description="as in /search"
    )
    generate: bool = Field(default=False, description="answer with the configured generator")

    @model_validator(mode="after")
    def _question_not_blank(self) -> RagRequest:
        if not self.question.strip():
            raise ValueError("question must not be blank")
        return self
