"""One writer at a time over the published data: the store, records.parquet, the index, the
feedback snapshot and the erasure list (and the user-derived parts of reports/ and mlruns/).

Every process that replaces one of them takes one lock, `paths.writer_lock`: `pipeline
dedup` for its whole run, `pipeline index build` before it reads or embeds anything,
`pipeline erase` and `POST /erase` for the erasure, `pipeline evaluate` while it writes the
most confident mistakes. Why one lock and not a lock per file: an erasure must reach all of
them, and a publisher that read the data before the erasure and renames after it would
bring the user back; with one lock, an erasure either runs wholly before a publisher
reads or wholly after it has published. The price is that an erasure waits for a running
dedup or index build (bounded, then exit 4 / HTTP 503 with nothing erased).

Whoever takes the lock first removes what killed writers left behind (their temporary
files may hold an erased user's rows) and completes unfinished erasures (the journal).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.io.lock import exclusive, try_exclusive
from pipeline.service import journal
from pipeline.service.settings import ServicePaths

BUSY_HINT = "wait for it to finish"


def _published(paths: ServicePaths) -> list[Path]:
    """Everything that is replaced by rename under the lock."""
    return [
        paths.store.parent,  # the dedup directory (store + records.parquet)
        paths.store,
        paths.records,
        paths.index_dir,
        paths.feedback,
        paths.erasures,
        # Only erasure's compacting copy; the service DB's own temporaries are not ours.
        paths.service_db.with_name(f"{paths.service_db.name}.erasure"),
        paths.reports / "eval" / "mistakes.json",
    ]


def remove_stale_temporaries(paths: ServicePaths, extra: Sequence[Path] = ()) -> int:
    """Delete temporaries of killed writers (`.<name>.*.tmp` beside a published path).

    Only the lock holder may call this: a live writer's temporaries look the same.
    """
    removed = 0
    for target in [*_published(paths), *extra]:
        for stale in target.parent.glob(f".{target.name}.*.tmp"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
            removed += 1
    journal.remove_stale(paths.erasure_journal)
    return removed


@contextmanager
def writer(
    paths: ServicePaths,
    command: str,
    wait: float | None = 0.0,
    on_wait: Callable[[str], None] | None = None,
    busy_hint: str = BUSY_HINT,
    finish_pending: bool = True,
    extra_temporaries: Sequence[Path] = (),
) -> Iterator[dict[str, dict[str, Any]]]:
    """Hold the writer lock as `command`; yields the erasures it completed (hash -> counts).

    `wait`, `on_wait` and `busy_hint` as in `pipeline.io.lock.exclusive`: 0 fails at once
    (exit 4) naming the holder; a number of seconds waits that long at most.
    """
    with exclusive(paths.writer_lock, command, wait, on_wait, busy_hint):
        remove_stale_temporaries(paths, extra_temporaries)
        completed = complete_pending(paths) if finish_pending else {}
        yield completed


def complete_pending(paths: ServicePaths) -> dict[str, dict[str, Any]]:
    """Finish every unfinished erasure (the caller holds the lock); hash -> what it removed."""
    from pipeline.service.erasure import apply_entry

    return {e.user_hash: apply_entry(paths, e) for e in journal.pending(paths.erasure_journal)}


def complete_pending_if_free(paths: ServicePaths, command: str) -> dict[str, dict[str, Any]]:
    """At a service's start: finish unfinished erasures unless a writer is at work (then
    that writer finishes them, as every writer does when it takes the lock)."""
    if not journal.pending(paths.erasure_journal):
        return {}
    with try_exclusive(paths.writer_lock, command) as held:
        if not held:
            return {}
        remove_stale_temporaries(paths)
        return complete_pending(paths)
