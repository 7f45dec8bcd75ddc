"""One router per area of the HTTP API; pipeline/api/app.py includes them all.

A new endpoint goes in the router of its area (or a new module here, added to `ROUTERS`):
its role from pipeline/api/deps.py, its bodies in pipeline/api/models.py, its logic in
pipeline/service/ or the store, which apply the key's scope.
"""

from __future__ import annotations

from typing import Any

from pipeline.api.models import ErrorBody

_ERRORS = {401: "missing or invalid API key", 403: "role or scope does not allow this"}
RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in _ERRORS.items()
}
