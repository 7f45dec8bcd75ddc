"""A review decision on a flagged label: the one check for the CLI and the HTTP endpoint.

The record must be kept in the store (and within the caller's scope); `accept` takes the
suggestion of the last `pipeline labels issues` (saved under the embed cache's directory),
`correct` needs a label the data already has (a typo would make a new class). The decision
is appended to the corrections file; the next `dvc repro` applies it in the dedup stage.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.dedup.corrections import ACTIONS, Correction, append, now
from pipeline.errors import NotFoundError, UserInputError
from pipeline.io.atomic import write_json

ISSUES_FILE = "labels/issues.json"  # under data/cache: the last `labels issues`, not tracked


def issues_path(cache_root: Path) -> Path:
    """Where `labels issues` leaves its last result (data/cache/labels/issues.json)."""
    return Path(cache_root) / ISSUES_FILE


def save_issues(path: Path, result: dict[str, Any]) -> None:
    """Keep the last result so `review` can show and accept its suggestions."""
    write_json(path, result)


def load_issues(path: Path) -> dict[str, Any]:
    """The last `labels issues` result; NotFoundError before the first."""
    if not path.exists():
        raise NotFoundError(f"{path}: no label issues yet; run `pipeline labels issues` first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserInputError(f"{path}: not a label-issues file ({exc})") from exc


def suggestion(path: Path, record_id: str) -> str:
    """The suggested label of a flagged record in the last result."""
    for row in load_issues(path).get("issues", []):
        if row["id"] == record_id:
            return str(row["suggested_label"])
    raise NotFoundError(
        f"record {record_id!r} is not among the issues of the last `pipeline labels issues`; "
        "give the label with --correct LABEL"
    )


def decide(
    cur: Any,
    scope: Any,
    corrections: Path,
    issues: Path,
    record_id: str,
    action: str,
    label: str | None,
    by: str,
    lock_timeout: float = 10.0,
) -> dict[str, Any]:
    """Check and append one decision on a kept record (`cur`: a store cursor); return it.

    NotFoundError for no such record (or no suggestion to accept), ForbiddenError out of
    `scope`, UserInputError for an unknown action or label.
    """
    from pipeline.store.lookup import get_record

    if action not in ACTIONS:
        raise UserInputError(f"action {action!r}: expected one of {', '.join(ACTIONS)}")
    record = get_record(cur, record_id, scope)
    record_id = str(record["id"])  # the caller may have named it by rid
    if action == "dismiss":
        if label is not None:
            raise UserInputError("dismiss takes no label: the record keeps its own")
    elif action == "accept" and label is None:
        label = suggestion(issues, record_id)
    elif label is None or not label.strip():
        raise UserInputError(f"{action} needs a label")
    if action != "dismiss":
        sql = "SELECT DISTINCT label FROM store.records WHERE label IS NOT NULL"
        known = {row[0] for row in cur.execute(sql).fetchall()}
        if label not in known:
            raise UserInputError(f"label {label!r} is not one of the data's: {sorted(known)}")
    try:
        correction = Correction(record_id, action, label, by, now())
    except ValueError as exc:
        raise UserInputError(str(exc)) from exc
    append(corrections, correction, wait=lock_timeout)
    return {**asdict(correction), "previous_label": record.get("label")}
