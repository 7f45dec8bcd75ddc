"""Searches by the owner of the files (the Python API, `pipeline search`) in the query log.

The HTTP service logs its searches itself (pipeline/api/routes/search.py, a batch a
second); a script or the CLI writes its one row at once, so the `query_id` it returns can be
judged at the next prompt (`pipeline feedback RECORD --query ID --grade G`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import BusyError
from pipeline.search.results import SearchResult, SearchResults

LOCAL_KEY = "local"  # the key id of the files' owner, who searches without an API key


def log_search(
    service_db: Path | None,
    text: str,
    filters: Sequence[Any],
    mode: str,
    k: int,
    hits: Sequence[SearchResult],
    seconds: float,
) -> SearchResults:
    """The hits with the id of their query-log row (None when not logged)."""
    if service_db is None:
        return SearchResults(hits)
    from pipeline.service.querylog import QueryLog

    log = QueryLog(service_db, lock_timeout=2.0)
    query_id = log.record(
        LOCAL_KEY, LOCAL_KEY, text, [str(f) for f in filters], mode, k,
        [h.rid for h in hits], seconds * 1000,
    )  # fmt: skip
    try:
        log.flush()
    except BusyError as exc:  # the search itself succeeded: answer it, without an id
        print(f"warning: query not logged ({exc}); it cannot be judged", file=sys.stderr)
        return SearchResults(hits)
    return SearchResults(hits, query_id)
