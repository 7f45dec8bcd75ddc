"""Where a framework retriever gets its hits: the project in process, or the HTTP service.

Both sources answer `hits(text, k, mode, filters)` with the search API's hit dicts
(pipeline/search/results.py `to_dict`, plus whatever columns later stages add), whose
`prompt` and `response` are the full texts when `full_text` is on (a hit carries snippets).
Filters are the search filters (strings, dicts in the JSON form, Conditions); they are
parsed here first, so a bad filter fails before any request, and sent to the service as
filter strings (a dict in the JSON form as itself: the service takes both). Scope: in
process, the caller's `Scope` (the owner of the files sees all); over HTTP, the key's,
which the service applies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import AuthError, ForbiddenError, NotFoundError, PipelineError, UserInputError
from pipeline.search.filters import as_conditions
from pipeline.store.scope import Scope

if TYPE_CHECKING:
    from pipeline.search.api import Searcher

# The hit keys that are text, not metadata, in a framework document.
TEXT_KEYS = ("prompt", "response")


class LocalSource:
    """Search with a `Searcher` in this process, within `scope` (default: every record)."""

    def __init__(
        self, searcher: Searcher, scope: Scope | None = None, full_text: bool = True
    ) -> None:
        self.searcher = searcher
        self.scope = scope if scope is not None else Scope.all()
        self.full_text = full_text

    @classmethod
    def open(
        cls, root: str | Path = ".", scope: Scope | None = None, full_text: bool = True
    ) -> LocalSource:
        """A source over the project under `root` (its params.yaml paths)."""
        from pipeline.search.project import open_from_config

        return cls(open_from_config(Path(root)), scope, full_text)

    def hits(self, text: str, k: int, mode: str, filters: Sequence[Any]) -> list[dict[str, Any]]:
        """The k best hits as dicts, full prompt and response texts when asked for."""
        self.searcher.reload_if_changed()
        found = self.searcher.search(
            text, k=k, mode=mode, filters=as_conditions(filters), scope=self.scope
        )
        out = [hit.to_dict() for hit in found]
        if self.full_text and out:
            from pipeline.store.db import snapshot_cursor
            from pipeline.store.search import fetch_records

            cursor = snapshot_cursor(self.searcher._con)
            try:
                records = fetch_records(cursor, [h["rid"] for h in out], self.scope)
            finally:
                cursor.close()
            for hit in out:
                record = records.get(hit["rid"], {})
                hit.update({key: record.get(key, hit[key]) for key in TEXT_KEYS})
        return out

    def close(self) -> None:
        """Close the searcher's store connection and encoder."""
        self.searcher.close()


class HttpSource:
    """Search the HTTP service (`POST /search`) with an API key; the key's scope applies."""

    def __init__(
        self,
        url: str,
        key: str,
        timeout: float = 30.0,
        full_text: bool = True,
        ca: str | Path | None = None,
    ) -> None:
        """`ca`: the PEM CA an https service's certificate must chain to (default: the
        system's roots); the certificate is always verified (docs/serving.md#tls)."""
        import httpx

        from pipeline.service.tls import client_context

        self.full_text = full_text
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
            verify=client_context(ca),
        )

    def hits(self, text: str, k: int, mode: str, filters: Sequence[Any]) -> list[dict[str, Any]]:
        """The k best hits as the service returns them, full texts read with GET /records."""
        from urllib.parse import quote

        parsed = as_conditions(filters)  # parsed here: a bad filter fails before a request
        # A dict goes as the service's JSON form; strings and Conditions as filter strings.
        sent = [
            dict(f) if isinstance(f, Mapping) else str(p)
            for f, p in zip(filters, parsed, strict=True)
        ]
        body = {"text": text, "k": k, "mode": mode, "filters": sent}
        out = _json(self._client.post("/search", json=body))["results"]
        if self.full_text:
            for hit in out:
                record = _json(self._client.get(f"/records/{quote(hit['id'], safe='')}"))["record"]
                hit.update({key: record.get(key, hit[key]) for key in TEXT_KEYS})
        return out

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def _json(response: Any) -> dict[str, Any]:
    """The body of a 2xx response; the service's error as our exception otherwise."""
    if response.is_success:
        return response.json()
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    request = response.request
    message = f"{request.method} {request.url.path}: {response.status_code} {detail}"
    raise _ERRORS.get(response.status_code, PipelineError)(message)


_ERRORS: dict[int, type[PipelineError]] = {
    400: UserInputError,
    422: UserInputError,
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
}


def document_parts(hit: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(record id, the text to ground on, metadata) of one hit, for any framework."""
    prompt, response = hit.get("prompt") or "", hit.get("response")
    text = f"{prompt}\n\n{response}" if response else prompt
    meta = {key: value for key, value in hit.items() if key not in (*TEXT_KEYS, "session")}
    return str(hit["id"]), text, meta
