"""Label corrections: the reviewed-label file (data/corrections.jsonl) and how dedup applies it.

The review loop (`pipeline labels review`, POST /labels/{id}/review) appends one JSON line
per decision: `{"id", "action", "label", "by", "at"}` with action `accept` (the suggested
label), `correct` (a label the reviewer gives) or `dismiss` (the label is right: stop
flagging it). The file is append-only under a lock, so the CLI and the service can write at
once; the last decision on an id wins. The dedup stage (a DVC dependency) reads it and
changes the staged label of accepted and corrected records, so the store, records.parquet
and the train stage see the corrected label; the store's `label_corrections` table keeps
the original label, the decision, who and when. The raw data is never edited.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.errors import UserInputError
from pipeline.io.lock import exclusive

ACTIONS = ("accept", "correct", "dismiss")
CORRECTION_SCHEMA = pa.schema(
    [("record_id", pa.string()), ("original_label", pa.string()), ("label", pa.string()),
     ("action", pa.string()), ("corrected_by", pa.string()),
     ("corrected_at", pa.timestamp("us", tz="UTC"))]
)  # fmt: skip
MAX_LABEL = 200  # characters: a label, not a comment


@dataclass(frozen=True)
class Correction:
    """One review decision on a record's label."""

    id: str
    action: str
    label: str | None  # the label the record gets (accept, correct); None for dismiss
    by: str
    at: str  # ISO 8601, UTC

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("id: expected a non-empty string")
        if self.action not in ACTIONS:
            raise ValueError(f"action {self.action!r}: expected one of {', '.join(ACTIONS)}")
        if self.action == "dismiss":
            if self.label is not None:
                raise ValueError("a dismiss carries no label")
        elif not isinstance(self.label, str) or not self.label.strip():
            raise ValueError(f"{self.action}: needs a non-empty label")
        elif len(self.label) > MAX_LABEL:
            raise ValueError(f"label: longer than {MAX_LABEL} characters")
        if not isinstance(self.by, str) or not self.by.strip():
            raise ValueError("by: expected who decided")
        datetime.fromisoformat(self.at)  # ValueError when it is not a timestamp


def now() -> str:
    """The current UTC time as the file stores it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def lock_path(path: Path) -> Path:
    """The lock beside the corrections file (data/.corrections.lock, git-ignored)."""
    return path.with_name(f".{path.stem}.lock")


def append(path: str | Path, correction: Correction, wait: float = 10.0) -> None:
    """Append one decision as a single write under the file's lock, fsynced: writers from the
    CLI and the service never interleave, and a line once appended survives a crash."""
    path = Path(path)
    line = json.dumps(asdict(correction), sort_keys=True, ensure_ascii=False) + "\n"
    owner = f"label review (pid {os.getpid()})"
    with exclusive(lock_path(path), owner, wait=wait), path.open("ab") as fh:
        if fh.tell() and not _ends_with_newline(path):
            fh.write(b"\n")  # a hand edit without a final newline: keep lines apart
        fh.write(line.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def read(path: str | Path, wait: float = 30.0) -> dict[str, Correction]:
    """The last decision per record id; an absent file has none. A bad line is a
    UserInputError naming the file, the line and the problem."""
    path = Path(path)
    if not path.exists():
        return {}
    with exclusive(lock_path(path), f"label review (pid {os.getpid()})", wait=wait):
        lines = path.read_text(encoding="utf-8").splitlines()  # no appender mid-line
    out: dict[str, Correction] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
            if not isinstance(row, dict):
                raise ValueError("expected a JSON object")
            unknown = set(row) - set(Correction.__dataclass_fields__)
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            correction = Correction(**{k: row.get(k) for k in Correction.__dataclass_fields__})
        except (ValueError, TypeError) as exc:
            raise UserInputError(f"{path}:{number}: {exc}".splitlines()[0]) from exc
        out.pop(correction.id, None)  # re-inserted: the dict keeps decision order
        out[correction.id] = correction
    return out


def apply(con: Any, corrections: dict[str, Correction]) -> dict[str, int]:
    """Apply the decisions to the staged records of the dedup stage's scratch database
    (`con`, tables `staged` and `label_corrections`); return the report's counts."""
    rows = list(corrections.values())
    con.register("incoming", pa.table({
        "record_id": [c.id for c in rows],
        "label": [c.label for c in rows],
        "action": [c.action for c in rows],
        "corrected_by": [c.by for c in rows],
        "corrected_at": pa.array([datetime.fromisoformat(c.at) for c in rows],
                                 pa.timestamp("us", tz="UTC")),
    }))  # fmt: skip
    try:
        # Ids not staged (erased, rejected, or no longer in the data) are counted, not kept.
        con.execute(
            "INSERT INTO label_corrections SELECT c.record_id, s.label, "
            "coalesce(c.label, s.label), c.action, c.corrected_by, c.corrected_at "
            "FROM incoming c JOIN staged s ON s.id = c.record_id "
            "ORDER BY c.corrected_at, c.record_id"  # the same file gives the same table
        ).fetchall()
    finally:
        con.unregister("incoming")
    con.execute(
        "UPDATE staged SET label = c.label FROM label_corrections c "
        "WHERE staged.id = c.record_id AND c.action <> 'dismiss'"
    ).fetchall()  # DuckDB 2 wants every result consumed before the next statement
    found = dict(
        con.execute("SELECT action, count(*) FROM label_corrections GROUP BY action").fetchall()
    )
    changed = con.execute(
        "SELECT count(*) FROM label_corrections WHERE action <> 'dismiss' "
        "AND original_label IS DISTINCT FROM label"
    ).fetchall()[0][0]
    return {
        "decisions": len(rows),
        **{action: int(found.get(action, 0)) for action in ACTIONS},
        "labels_changed": int(changed),
        "not_found": len(rows) - sum(int(v) for v in found.values()),
    }
