"""The query log: every search, buffered in memory and appended to the service DB in batches.

Writing a row per request would open the DuckDB file on the hot path and contend with the
CLI for its lock; a batch a second costs one open. A batch that cannot be written (the
file is locked for longer than the timeout) stays buffered for the next flush.

A row holds the query text and filters clipped to the request caps (pipeline/service/
limits.py) and secrets- and PII-redacted as the dedup stage redacts records: a key can add
a bounded number of bytes per search, and an e-mail address or an API key typed into a
query is not kept.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from pipeline.dedup.pii import PiiSettings, redact
from pipeline.dedup.secrets import SecretSettings, redact_secrets
from pipeline.errors import BusyError
from pipeline.service.limits import FILTER_MAX, FILTERS_MAX, QUERY_TEXT_MAX, clip
from pipeline.store import service as db

_PII = PiiSettings()
_SECRETS = SecretSettings()


def loggable(text: str, limit: int) -> str:
    """`text` as the query log keeps it: at most `limit` characters, secrets and PII replaced
    by placeholders (`<API_KEY>`, `<EMAIL>`, ...), lone surrogates escaped so it can be stored."""
    redacted, _ = redact(redact_secrets(clip(text, limit), _SECRETS)[0], _PII)
    return clip(redacted.encode("utf-8", "backslashreplace").decode("utf-8"), limit)


def _stored(row: dict) -> dict:
    return {
        **row,
        "text": loggable(row["text"], QUERY_TEXT_MAX),
        "filters": [loggable(f, FILTER_MAX) for f in row["filters"]],
    }


class QueryLog:
    """A thread-safe buffer of query rows with an explicit `flush()`."""

    def __init__(self, service_db: str | Path, lock_timeout: float = 10.0) -> None:
        self.service_db = Path(service_db)
        self.lock_timeout = lock_timeout
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()

    def record(
        self,
        key_id: str,
        key_name: str,
        text: str,
        filters: Sequence[str],
        mode: str,
        k: int,
        result_rids: Sequence[int],
        latency_ms: float,
        status: int = 200,
    ) -> str:
        """Buffer one query (text and filters bounded; redacted when written); its query id,
        which the search response carries and feedback names to judge its results."""
        query_id = new_query_id()
        row = {
            "ts": datetime.now(UTC),
            "key_id": key_id,
            "key_name": key_name,
            # Clipped now (the buffer stays bounded), redacted at flush (off the request path).
            "text": clip(text, QUERY_TEXT_MAX),
            "filters": [clip(f, FILTER_MAX) for f in filters[:FILTERS_MAX]],
            "mode": mode,
            "k": k,
            "result_rids": [int(r) for r in result_rids],
            "latency_ms": float(latency_ms),
            "status": status,
            "query_id": query_id,
        }
        with self._lock:
            self._rows.append(row)
        return query_id

    def pending(self) -> int:
        """Rows not yet written."""
        return len(self._rows)

    def flush(self) -> int:
        """Append the buffered rows to the service DB; returns how many were written."""
        with self._flush_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return 0
            table = pa.Table.from_pylist([_stored(row) for row in rows], schema=db.QUERY_LOG_SCHEMA)
            try:
                with db.open_service_db(self.service_db, lock_timeout=self.lock_timeout) as con:
                    db.append_queries(con, table)
            except BusyError:
                with self._lock:
                    self._rows[:0] = rows  # keep them, in order, for the next flush
                raise
            return len(rows)


def new_query_id() -> str:
    """A random, unguessable id: a key cannot name another key's queries by counting."""
    return uuid.uuid4().hex


def usage_report(service_db: str | Path, top: int = 10) -> dict:
    """Queries per day, latency percentiles, zero-result queries and most-returned records."""
    with db.open_service_db(service_db, read_only=True) as con:
        return db.usage_summary(con, top)


def format_usage(report: dict) -> str:
    """The usage report as a few human-readable lines."""
    lat = report["latency_ms"]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    lines = [
        f"queries: {report['queries']}  (failed: {report['failed_queries']}, "
        f"zero results: {report['zero_result_queries']})",
        f"latency: p50 {ms(lat['p50'])}  p95 {ms(lat['p95'])}  p99 {ms(lat['p99'])}",
        "per day:",
        *(f"  {d['day']}  {d['queries']}" for d in report["per_day"]),
        "zero-result queries:",
        *(f"  {z['count']:>5}  {z['text'][:80]}" for z in report["top_zero_result"]),
        "most-returned records (rid):",
        *(f"  {r['count']:>5}  {r['rid']}" for r in report["most_returned"]),
    ]
    return "\n".join(lines)
