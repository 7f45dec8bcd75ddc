"""FastAPI dependencies: who is calling (401 otherwise) and may they do this (403 otherwise)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from pipeline.errors import AuthError
from pipeline.service.keys import Principal

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="or `X-API-Key: <key>`")


def current_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> Principal:
    """The caller's key identity; 401 when the key is missing, malformed or revoked.

    The request guard (pipeline/serve/guard.py) has already authenticated the headers,
    before the body was read; the schemes above document the key in the OpenAPI schema.
    """
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        return principal
    key = bearer.credentials if bearer is not None else header
    try:
        return request.app.state.service.keys.authenticate(key)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc


def require(role: str) -> Callable[[Principal], Principal]:
    """A dependency that lets through keys whose role includes `role` (403 otherwise)."""

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.allows(role):
            raise HTTPException(403, f"a {principal.role} key cannot do this; it needs {role}")
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


def forbid_out_of_scope(principal: Principal, record: dict) -> None:
    """403 when a record lies outside the key's row-level scope."""
    if not principal.sees(record):
        raise HTTPException(403, "this record is outside the scope of your API key")


# Endpoint parameter types: `principal: Reader` authenticates and checks the role.
Caller = Annotated[Principal, Depends(current_principal)]
Reader = Annotated[Principal, Depends(require("reader"))]
Writer = Annotated[Principal, Depends(require("writer"))]
Admin = Annotated[Principal, Depends(require("admin"))]
