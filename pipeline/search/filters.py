"""Search filters as data: `label=support`, `quality>=4`, `metadata.tier=gold OR NOT ...`.

A filter is a tree: `Condition(field, op, value)` leaves joined by `AllOf` (AND), `AnyOf` (OR)
and `Not`. A leaf's field is a record field, a side file's column (annotations.COLUMNS), or
any metadata key (`metadata.app_version`, nested keys dotted); its value is typed (float for
quality and numeric side columns, UTC datetime for created_at, text otherwise; a metadata
value is text that pipeline/store/search.py compares by the type stored in each record).
The string syntax is parsed in pipeline/search/filter_syntax.py; pipeline/store/search.py
turns the tree into SQL with bound parameters, so a value is only ever compared, never
executed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, ClassVar

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
# `metadata.KEY[.KEY...]`: any key a team logs; segments are plain names so the JSON path
# built from them (pipeline/store/search.py) needs no escaping, and it is bound anyway.
METADATA = "metadata"
_METADATA_FIELD = re.compile(r"^metadata(\.[A-Za-z0-9_\-]{1,64}){1,8}$")

EQUALITY_OPS: tuple[str, ...] = ("=", "!=", "in")
RANGE_OPS: tuple[str, ...] = ("<", "<=", ">", ">=")
OPS: tuple[str, ...] = EQUALITY_OPS + RANGE_OPS


@dataclass(frozen=True)
class Condition:
    """One structured filter: `field op value`; for `in`, value is a tuple of values."""

    field: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.field not in FIELDS and not is_metadata(self.field):
            raise UserInputError(
                f"filter field {self.field!r} is unknown; expected one of {', '.join(FIELDS)} "
                "or metadata.KEY"
            )
        if self.op not in OPS:
            raise UserInputError(f"filter {self.field}: operator {self.op!r} is not supported")
        if self.op in RANGE_OPS and self.field not in RANGE_FIELDS and not is_metadata(self.field):
            raise UserInputError(
                f"filter {self.field}{self.op}: ranges apply only to {', '.join(RANGE_FIELDS)}"
            )
        if self.op == "in":
            scalar = isinstance(self.value, (str, bytes)) or not isinstance(
                self.value, (list, tuple, set, frozenset)
            )
            values = (self.value,) if scalar else tuple(self.value)
            if not values:
                raise UserInputError(f"filter {self.field} in (): give at least one value")
            object.__setattr__(self, "value", tuple(_coerce(self.field, v) for v in values))
        else:
            object.__setattr__(self, "value", _coerce(self.field, self.value))

    def __str__(self) -> str:
        if self.op == "in":
            return f"{self.field} in ({', '.join(map(quote_value, self.value))})"
        return f"{self.field}{self.op}{quote_value(self.value)}"

    def conditions(self) -> Iterator[Condition]:
        """The leaves of this filter: itself."""
        yield self


@dataclass(frozen=True)
class _Group:
    parts: tuple[Filter, ...]
    word: ClassVar[str]

    def __str__(self) -> str:
        return f" {self.word} ".join(_grouped(p) for p in self.parts)

    def conditions(self) -> Iterator[Condition]:
        """Every leaf condition under this node."""
        for part in self.parts:
            yield from part.conditions()


class AllOf(_Group):
    """Every part holds (AND)."""

    word = "AND"


class AnyOf(_Group):
    """At least one part holds (OR)."""

    word = "OR"


@dataclass(frozen=True)
class Not:
    """The part does not hold (a record missing the field counts as not matching it)."""

    part: Filter

    def __str__(self) -> str:
        return f"NOT {_grouped(self.part)}"

    def conditions(self) -> Iterator[Condition]:
        """Every leaf condition under this node."""
        yield from self.part.conditions()


Filter = Condition | AllOf | AnyOf | Not


def is_metadata(field: str) -> bool:
    """Whether `field` names a metadata key (`metadata.app_version`)."""
    return bool(_METADATA_FIELD.match(field))


def metadata_path(field: str) -> str:
    """The JSON path of a metadata field: metadata.a.b -> $."a"."b" (segments validated)."""
    if not is_metadata(field):
        raise UserInputError(f"filter field {field!r} is not metadata.KEY")
    return "$" + "".join(f'."{seg}"' for seg in field.split(".")[1:])


def parse_filter(text: str) -> Filter:
    """Parse one filter string (`label=a OR NOT quality>=4`, see filter_syntax) into a tree."""
    from pipeline.search.filter_syntax import parse

    return parse(text)


def as_conditions(items: Iterable[str | Filter | Mapping[str, Any]]) -> tuple[Filter, ...]:
    """Parse filter strings (and JSON-shaped dicts), pass trees through; the result is ANDed."""
    from pipeline.search.filter_syntax import from_json

    out: list[Filter] = []
    for item in items:
        if isinstance(item, Condition | AllOf | AnyOf | Not):
            out.append(item)
        elif isinstance(item, str):
            out.append(parse_filter(item))
        elif isinstance(item, Mapping):
            out.append(from_json(item))
        else:
            raise UserInputError(f"filter {item!r}: expected a string, a dict or a Condition")
    return tuple(out)


def _grouped(part: Filter) -> str:
    return f"({part})" if isinstance(part, AllOf | AnyOf) else str(part)


def quote_value(value: Any) -> str:
    """A value as the syntax reads it back: quoted when it holds spaces, quotes or parens."""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    # Quoted when a bare value would read back differently: spaces, quotes, parentheses,
    # a keyword, or a leading operator character (`tags==>` would read as `==` then `>`).
    if re.search(r"[\s\"'()]", text) or text in ("AND", "OR", "NOT") or text[:1] in "=<>!":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _coerce(field: str, value: Any) -> Any:
    if is_metadata(field):
        # Kept as text: the store compares it with each record's value by the type stored
        # there (a JSON number as a number, a string as a string, true/false as booleans).
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            if not math.isfinite(value):
                raise UserInputError(f"{field} value {value!r} is not a finite number")
            return repr(value)
        if not isinstance(value, str):
            raise UserInputError(f"{field} value {value!r} must be text, a number or a boolean")
        return value
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
