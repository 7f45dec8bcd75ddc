"""A request written to the query log whatever its outcome: POST /search and POST /rag."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException

from pipeline.api import errors
from pipeline.errors import PipelineError


@dataclass
class Logged:
    """What the log gets: the rids the caller was shown; and, after the block, the query id."""

    rids: list[int] = field(default_factory=list)
    took_ms: float = 0.0
    query_id: str | None = None


@contextmanager
def logged_query(
    service: Any, principal: Any, text: str, filters: Sequence[str], mode: str, k: int
) -> Iterator[Logged]:
    """Time the block and log it (redacted at flush) with the status it ends with; a failed
    request is logged too (status 4xx/5xx, no results), so usage reports count it."""
    entry, status = Logged(), 200
    started = time.perf_counter()
    try:
        yield entry
    except PipelineError as exc:
        status = errors.status_of(exc)
        raise
    except HTTPException as exc:
        status = exc.status_code
        raise
    except Exception:
        status = 500
        raise
    finally:
        entry.took_ms = (time.perf_counter() - started) * 1000
        entry.query_id = service.querylog.record(
            principal.key_id, principal.name, text, filters, mode, k, entry.rids,
            entry.took_ms, status,
        )  # fmt: skip
