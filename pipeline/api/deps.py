"""FastAPI dependencies: who is calling (401 otherwise), may they do this (403 otherwise), and
the server state a handler works with. A key's row scope travels with its `Principal`
(`principal.scope`); the search and the store apply it, so handlers only pass it on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from pipeline.api.state import ServiceState
from pipeline.errors import AuthError, NotFoundError
from pipeline.service.keys import Principal
from pipeline.store.lookup import StoreReader

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="or `X-API-Key: <key>`")


def service_state(request: Request) -> ServiceState:
    """What this server process holds (pipeline/api/state.py)."""
    return request.app.state.service


Service = Annotated[ServiceState, Depends(service_state)]


def store_reader(service: ServiceState) -> StoreReader:
    """The store reader, fresh; 503 (not 404) while no store has been built."""
    try:
        service.store.refresh()
    except NotFoundError as exc:
        raise HTTPException(503, f"store not available: {exc}") from exc
    return service.store


@contextmanager
def store_cursor(service: ServiceState) -> Iterator[Any]:
    """A store cursor for one request (503 while there is no store)."""
    with store_reader(service).cursor() as cur:
        yield cur


def current_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> Principal:
    """The caller's key identity; 401 when the key is missing, malformed or revoked.

    The request guard (pipeline/api/guard.py) has already authenticated the headers,
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


# Endpoint parameter types: `principal: Reader` authenticates and checks the role.
Caller = Annotated[Principal, Depends(current_principal)]
Reader = Annotated[Principal, Depends(require("reader"))]
Writer = Annotated[Principal, Depends(require("writer"))]
Admin = Annotated[Principal, Depends(require("admin"))]
