"""Search filters as data: `label=support`, `quality>=4`, `created_at<2024-06-01`.

A filter string is parsed into a `Condition(field, op, value)` whose field is one of a fixed
set and whose value is typed (float for quality, UTC datetime for created_at, text
otherwise). pipeline/store/search.py turns conditions into SQL with bound parameters, so a
value is only ever compared, never executed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pipeline.errors import UserInputError
from pipeline.store.annotations import COLUMNS as SIDE_COLUMNS
from pipeline.store.annotations import NUMERIC

# Text fields compare by equality; `tags` means "the record's tags contain the value".
# Side files' text columns (predicted_label) compare the same way.
TEXT_FIELDS: tuple[str, ...] = (
    *("label", "user_id", "session_id", "origin", "source", "tags"),
    *(name for name, sql in SIDE_COLUMNS.items() if sql == "VARCHAR"),
)
# Numbers compare as floats: the record's quality and the side files' numeric columns
# (anomaly_score), which later stages add by record id (pipeline/store/annotations.py).
NUMBER_FIELDS: tuple[str, ...] = (
    "quality",
    *(name for name, sql in SIDE_COLUMNS.items() if sql in NUMERIC),
)
RANGE_FIELDS: tuple[str, ...] = (*NUMBER_FIELDS, "created_at")
FIELDS: tuple[str, ...] = TEXT_FIELDS + RANGE_FIELDS

EQUALITY_OPS: tuple[str, ...] = ("=", "!=", "in")
RANGE_OPS: tuple[str, ...] = ("<", "<=", ">", ">=")
OPS: tuple[str, ...] = EQUALITY_OPS + RANGE_OPS

# Longest operators first so `>=` is not read as `>` followed by a value starting with `=`.
_FILTER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|!=|==|=|>|<)(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Condition:
    """One structured filter: `field op value`; for `in`, value is a tuple of values."""

    field: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise UserInputError(
                f"filter field {self.field!r} is unknown; expected one of {', '.join(FIELDS)}"
            )
        if self.op not in OPS:
            raise UserInputError(f"filter {self.field}: operator {self.op!r} is not supported")
        if self.op in RANGE_OPS and self.field not in RANGE_FIELDS:
            raise UserInputError(
                f"filter {self.field}{self.op}: ranges apply only to {', '.join(RANGE_FIELDS)}"
            )
        if self.op == "in":
            values = tuple(self.value) if not isinstance(self.value, str) else (self.value,)
            object.__setattr__(self, "value", tuple(_coerce(self.field, v) for v in values))
        else:
            object.__setattr__(self, "value", _coerce(self.field, self.value))

    def __str__(self) -> str:
        if self.op == "in":
            return f"{self.field} in ({', '.join(map(str, self.value))})"
        return f"{self.field}{self.op}{self.value}"


def parse_filter(text: str) -> Condition:
    """Parse `FIELD=VALUE`, `FIELD!=VALUE` or a range `FIELD>=VALUE` into a Condition."""
    match = _FILTER.match(text)
    if not match:
        raise UserInputError(
            f"filter {text!r}: expected FIELD=VALUE or a range such as quality>=4 "
            f"(fields: {', '.join(FIELDS)})"
        )
    field, op, raw = match.group(1), match.group(2), match.group(3).strip()
    if field not in FIELDS:
        raise UserInputError(
            f"filter {text!r}: unknown field {field!r}; expected one of {', '.join(FIELDS)}"
        )
    if raw == "":
        raise UserInputError(f"filter {text!r}: missing value after {op!r}")
    try:
        return Condition(field, "=" if op == "==" else op, raw)
    except UserInputError as exc:
        raise UserInputError(f"filter {text!r}: {exc}") from exc


def as_conditions(items: Iterable[str | Condition]) -> tuple[Condition, ...]:
    """Parse filter strings and pass Conditions through, in order."""
    out = []
    for item in items:
        if isinstance(item, Condition):
            out.append(item)
        elif isinstance(item, str):
            out.append(parse_filter(item))
        else:
            raise UserInputError(f"filter {item!r}: expected a string or a Condition")
    return tuple(out)


def _coerce(field: str, value: Any) -> Any:
    if field in NUMBER_FIELDS:
        if isinstance(value, bool):
            raise UserInputError(f"{field} value {value!r} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserInputError(f"{field} value {value!r} is not a number") from None
        if not math.isfinite(number):  # NaN compares false to everything: a silent no-match
            raise UserInputError(f"{field} value {value!r} is not a finite number")
        return number
    if field == "created_at":
        return _timestamp(value)
    if not isinstance(value, str):
        raise UserInputError(f"{field} value {value!r} must be text")
    return value


def _timestamp(value: Any) -> datetime:
    """A date or ISO datetime as an aware UTC datetime (naive values are taken as UTC)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UserInputError(
                f"created_at value {value!r} is not a date (YYYY-MM-DD or ISO 8601)"
            ) from None
    else:
        raise UserInputError(f"created_at value {value!r} is not a date")
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before the first representable instant
        raise UserInputError(f"created_at value {value!r} is out of range") from None
