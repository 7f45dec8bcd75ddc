"""Error responses that can always be encoded: 4xx for anything a caller sends, never a 500.

FastAPI's default validation handler echoes each offending value back. A lone surrogate
cannot be encoded as UTF-8 and NaN is not JSON, so that echo turned a 422 into a 500; a
1 MiB string or a value nested a thousand deep made a huge or unencodable reply. Here a
validation error says where and what (`loc`, `msg`, `type`), never the value itself, and
every string in a reply is clipped and made encodable.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from pipeline.errors import (
    AuthError,
    BusyError,
    ForbiddenError,
    NotFoundError,
    PipelineError,
    UserInputError,
)
from pipeline.service.limits import clip

_MAX_ERRORS = 20  # a body with a thousand bad items gets the first twenty
_MAX_TEXT = 1000  # characters of any one message or location part

# Pydantic's wording for these is about its internals; say what the caller should do.
_CLEARER = {
    "string_unicode": "not valid Unicode text (a lone surrogate such as \\ud800?): send UTF-8",
    "finite_number": "must be a finite number (NaN and Infinity are not accepted)",
}


def safe_text(value: object) -> str:
    """`value` as clipped text that encodes to UTF-8 (lone surrogates escaped)."""
    text = clip(str(value), _MAX_TEXT)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def status_of(exc: PipelineError) -> int:
    """The HTTP status of a pipeline error."""
    if isinstance(exc, UserInputError):
        return 400
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, BusyError):
        return 503
    if isinstance(exc, ForbiddenError):  # a role or scope that does not allow the call
        return 403
    if isinstance(exc, AuthError):
        return 401
    return 500


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Where and what, without the offending value."""
    out = []
    for error in exc.errors()[:_MAX_ERRORS]:
        kind = str(error.get("type", ""))
        loc = [part if isinstance(part, int) else safe_text(part) for part in error.get("loc", ())]
        out.append({"loc": loc, "msg": safe_text(_CLEARER.get(kind, error.get("msg", ""))),
                    "type": kind})  # fmt: skip
    return out


def install(app: FastAPI) -> None:
    """Register the handlers for validation and pipeline errors on `app`."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_errors(exc)}, status_code=422)

    @app.exception_handler(PipelineError)
    async def pipeline_error(request: Request, exc: PipelineError) -> JSONResponse:
        headers = {"Retry-After": "1"} if isinstance(exc, BusyError) else None
        return JSONResponse({"detail": safe_text(exc)}, status_code=status_of(exc), headers=headers)
