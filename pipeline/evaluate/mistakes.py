"""The most confident mistakes: the one evaluation output that quotes records' text.

It is written twice, to reports/eval/mistakes.json and as the MLflow table
`eval/most_confident_mistakes.json` of the train run, so an erasure must reach both: the
evaluate stage drops erased users' records before writing (holding the writer lock), and
`pipeline erase` removes a user's records from the report and from the table of every run
in the local artifact store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.io.atomic import atomic_path
from pipeline.io.files import user_hash

ARTIFACT = "eval/most_confident_mistakes.json"
log = logging.getLogger(__name__)


def drop_erased(
    mistakes: Sequence[Mapping[str, Any]],
    user_of: Mapping[str, str | None],
    erasures: Iterable[str],
) -> list[dict[str, Any]]:
    """The mistakes whose record's user (`user_of[id]`) is not on the erasure list."""
    erased = frozenset(erasures)

    def kept(mistake: Mapping[str, Any]) -> bool:
        user = user_of.get(mistake["id"])
        return user is None or user_hash(user) not in erased

    return [dict(m) for m in mistakes if kept(m)]


def scrub_report(path: Path, ids: set[str]) -> int:
    """Rewrite reports/eval/mistakes.json without entries of these record ids; how many."""
    if not path.exists():
        return 0
    entries = json.loads(path.read_text(encoding="utf-8"))
    kept = [e for e in entries if e.get("id") not in ids]
    if len(kept) == len(entries):
        return 0
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return len(entries) - len(kept)


def scrub_artifacts(mlruns: Path, ids: set[str]) -> int:
    """Remove rows of these record ids from the mistakes table of every run under `mlruns`.

    The table is MLflow's `log_table` JSON ({"columns": [...], "data": [[...], ...]}). A
    file that cannot be read as one (a write killed half-way) is deleted: it cannot be
    checked, and the run's other artifacts do not depend on it.
    """
    removed = 0
    if not mlruns.is_dir():
        return 0
    # Runs live at <mlruns>/<run>/artifacts (an experiment given an artifact location, as
    # the stages create it) or <mlruns>/<experiment>/<run>/artifacts (MLflow's default).
    name = Path(ARTIFACT).name
    for stale in mlruns.rglob(f".{name}.*.tmp"):
        stale.unlink(missing_ok=True)  # a killed scrub's copy (the caller holds the lock)
    for path in sorted(mlruns.rglob(name)):
        if not path.as_posix().endswith(f"/artifacts/{ARTIFACT}"):
            continue
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
            column = table["columns"].index("id")
            rows = table["data"]
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("%s: unreadable mistakes table, deleted", path)
            path.unlink(missing_ok=True)
            removed += 1
            continue
        kept = [row for row in rows if row[column] not in ids]
        if len(kept) != len(rows):
            table["data"] = kept
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(table), encoding="utf-8")
            removed += len(rows) - len(kept)
    return removed
