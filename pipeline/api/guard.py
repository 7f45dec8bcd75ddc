"""What is checked on a request's headers, before its body is read.

FastAPI reads and parses the body before it runs any dependency, so a caller without a key
could make the server buffer a body of any size before hearing 401 (two 300 MB bodies cost
4.5 s and 430 MB). This ASGI middleware runs first, in this order:

1. no API key in the query string (400): URLs end up in access logs, proxies and histories;
2. a declared Content-Length above `serve.max_body_bytes` gets 413 without reading a byte;
3. the API key, from the headers, against the in-memory key set (401), for every path but
   the public ones (/health and the API documents);
4. a body without a length (chunked) is counted as it arrives: 413 once past the cap.

Starlette's own RequestBodyLimitMiddleware checks only once the app reads or answers, and
replaces any answer (a 401 too) by a plain-text 413 that keeps the connection open for the
rest of the upload; here a refused body also closes the connection, so the client stops
sending it and the server stops discarding it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import anyio
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.errors import AuthError
from pipeline.service.keys import KEY_PREFIX, KeyCache, UnknownKeyError

# Parameter names clients use for keys; any value shaped like one of our keys counts too.
_KEY_PARAMS = frozenset(
    {"key", "api_key", "apikey", "api-key", "x-api-key", "token", "access_token", "auth",
     "authorization", "bearer"}
)  # fmt: skip
_UNKNOWN_KEY_WAIT = 1.0  # seconds a request with a new key id waits for a fresh key read
_CLOSE = (b"connection", b"close")
_KEY_IN_URL = (
    "API keys go in the `Authorization: Bearer <key>` or `X-API-Key` header, never in the URL "
    "(URLs are logged): consider this key exposed and revoke it"
)


@dataclass(frozen=True)
class Refusal:
    """A request answered from its headers alone."""

    status: int
    detail: str
    headers: Mapping[str, str] = field(default_factory=dict)


def _unauthorised(exc: AuthError) -> Refusal:
    return Refusal(401, str(exc), {"WWW-Authenticate": "Bearer"})


def key_from_headers(headers: Headers) -> str | None:
    """The key of `Authorization: Bearer <key>`, else of `X-API-Key`."""
    scheme, credentials = get_authorization_scheme_param(headers.get("authorization"))
    if scheme.lower() == "bearer" and credentials:
        return credentials
    return headers.get("x-api-key")


def _key_in_query(query_string: bytes) -> bool:
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return any(
        name.strip().lower() in _KEY_PARAMS or KEY_PREFIX in value or KEY_PREFIX in name
        for name, value in pairs
    )


class RequestGuard:
    """The checks above, as pure ASGI middleware (`app.add_middleware(RequestGuard, ...)`)."""

    def __init__(
        self, app: ASGIApp, keys: KeyCache, max_body_bytes: int, public_paths: Iterable[str]
    ) -> None:
        self.app = app
        self.keys = keys
        self.max_body_bytes = max_body_bytes
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._check_headers(scope, headers)
        if refusal is None and scope["path"] not in self.public_paths:
            refusal = await self._authenticate(scope, headers)
        if refusal is None:
            await self._call_counting(scope, receive, send)
            return
        # An unread body is not worth receiving: closing stops the upload (uvicorn would
        # otherwise read and discard the rest to keep the connection).
        unread_body = (
            headers.get("content-length", "0") != "0"
            or "chunked" in headers.get("transfer-encoding", "").lower()
        )
        extra = {**refusal.headers, "Connection": "close"} if unread_body else refusal.headers
        response = JSONResponse({"detail": refusal.detail}, refusal.status, headers=extra)
        await response(scope, receive, send)

    def _check_headers(self, scope: Scope, headers: Headers) -> Refusal | None:
        if scope.get("query_string") and _key_in_query(scope["query_string"]):
            return Refusal(400, _KEY_IN_URL)
        length = headers.get("content-length")
        if length is not None and not (length.isascii() and length.isdigit()):
            return Refusal(400, f"Content-Length {length[:40]!r} is not a number of bytes")
        if length is not None and int(length) > self.max_body_bytes:
            return Refusal(
                413,
                f"request body of {length} bytes is larger than the limit of "
                f"{self.max_body_bytes} bytes (serve.max_body_bytes)",
            )
        return None

    async def _authenticate(self, scope: Scope, headers: Headers) -> Refusal | None:
        key = key_from_headers(headers)
        try:
            principal = self.keys.authenticate(key)
        except UnknownKeyError as exc:
            # Maybe a key created a moment ago by another process: one fresh read (at most
            # one per `miss_reload`, whatever the flood of unknown ids), off the event loop.
            read = functools.partial(self.keys.read_for_unknown_key, _UNKNOWN_KEY_WAIT)
            if not await anyio.to_thread.run_sync(read):
                return _unauthorised(exc)
            try:
                principal = self.keys.authenticate(key)
            except AuthError as again:
                return _unauthorised(again)
        except AuthError as exc:
            return _unauthorised(exc)
        scope.setdefault("state", {})["principal"] = principal
        return None

    async def _call_counting(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        overflow = False

        async def limited_receive() -> Message:
            nonlocal received, overflow
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    overflow = True
                    # FastAPI re-raises an HTTPException from the body read: a JSON 413.
                    raise HTTPException(
                        413,
                        f"request body larger than the limit of {self.max_body_bytes} bytes "
                        "(serve.max_body_bytes)",
                    )
            return message

        async def closing_send(message: Message) -> None:
            if overflow and message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
            await send(message)

        await self.app(scope, limited_receive, closing_send)
