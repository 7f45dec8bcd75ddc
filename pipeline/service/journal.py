"""The erasure journal: one small file per unfinished erasure under `paths.erasure_journal`.

An erase writes its entry (fsynced, mode 0600) before it touches anything, records each
step it completes in the entry, and removes the entry last. A killed erase therefore
leaves an entry that `pipeline erase --status` lists and that the next writer (erase,
dedup, index build, service start) completes. The entry holds the raw user id, because
matching rejected raw lines needs it; nothing else ever stores it, and only this file's
owner can read it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.io.atomic import fsync_dir, write_durably
from pipeline.io.files import user_hash

SUFFIX = ".json"


@dataclass
class Entry:
    """One unfinished erasure: who asked, when, what is known about it and what is done."""

    user_id: str
    user_hash: str
    requested_at: str  # ISO 8601 UTC
    requested_by: str
    plan: dict[str, Any] | None = None  # rids and ids of the user's rows, once gathered
    done: dict[str, Any] = field(default_factory=dict)  # step -> what it removed

    def public(self) -> dict[str, Any]:
        """What `erase --status` shows: never the user id."""
        return {
            "user_hash": self.user_hash,
            "requested_at": self.requested_at,
            "requested_by": self.requested_by,
            "steps_done": sorted(self.done),
        }


def save(journal: Path, entry: Entry) -> None:
    """Write the entry durably (fsynced, renamed, directory fsynced), readable by its owner only."""
    journal.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = json.dumps(asdict(entry), sort_keys=True).encode("utf-8")
    write_durably(journal / f"{entry.user_hash}{SUFFIX}", data, mode=0o600)


def begin(journal: Path, user_id: str, requested_by: str) -> Entry:
    """The entry of this user's erasure: the unfinished one if any, else a new, saved one."""
    digest = user_hash(user_id)
    existing = _load(journal / f"{digest}{SUFFIX}")
    if existing is not None:
        return existing
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    entry = Entry(user_id=user_id, user_hash=digest, requested_at=now, requested_by=requested_by)
    save(journal, entry)
    return entry


def finish(journal: Path, entry: Entry) -> None:
    """Remove the entry: the erasure is complete."""
    (journal / f"{entry.user_hash}{SUFFIX}").unlink(missing_ok=True)
    fsync_dir(journal)


def pending(journal: Path) -> list[Entry]:
    """Unfinished erasures, oldest first."""
    if not journal.is_dir():
        return []
    entries = [_load(path) for path in journal.glob(f"*{SUFFIX}")]
    return sorted((e for e in entries if e is not None), key=lambda e: e.requested_at)


def _load(path: Path) -> Entry | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{path}: unreadable erasure journal entry ({exc})") from exc
    try:
        entry = Entry(**data)
    except TypeError as exc:
        raise PipelineError(f"{path}: not an erasure journal entry ({exc})") from exc
    if user_hash(entry.user_id) != entry.user_hash or path.stem != entry.user_hash:
        raise PipelineError(f"{path}: the entry's user hash does not match its user id")
    return entry


def remove_stale(journal: Path) -> None:
    """Delete temporary files of a killed `save` (the caller holds the writer lock)."""
    if journal.is_dir():
        for tmp in journal.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
