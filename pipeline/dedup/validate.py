"""Turn one parsed row into a `Record`, or say precisely why it cannot be one."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.dedup.ids import default_id, rid_of
from pipeline.dedup.invisible import is_blank
from pipeline.errors import UserInputError
from pipeline.record import ORIGINS, USER_FIELDS, Record

_TEXT_FIELDS = ("response", "label", "user_id", "session_id", "parent_id", "source")
_INT32 = (-(2**31), 2**31 - 1)


class Invalid(Exception):
    """A row that cannot become a record: a short reason code and a detail for people."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ValidateSettings:
    """Limits from `dedup.validate`."""

    max_field_chars: int = 100_000  # longer text fields are rejected as oversize
    max_line_bytes: int = 2_000_000  # longer raw lines are rejected before parsing

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> ValidateSettings:
        return cls(int(cfg["max_field_chars"]), int(cfg["max_line_bytes"]))


@dataclass(frozen=True)
class FieldMap:
    """Columns of a dataset's files -> record fields (`conf/data/*.yaml` `fields`)."""

    column_to_field: dict[str, str] = field(default_factory=dict)
    default_origin: str = "real"
    default_source: str | None = None

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> FieldMap:
        """Build from a `data` config; unknown record fields fail naming the key."""
        fields = dict(cfg.get("fields") or {})
        for name in fields:
            if name not in USER_FIELDS:
                raise UserInputError(
                    f"data.fields.{name}: not a record field; expected one of {list(USER_FIELDS)}"
                )
        mapped_columns = set(fields.values())
        column_to_field = {str(col): name for name, col in fields.items()}
        # A column named like a field maps to it unless a mapping already claims that field.
        for name in USER_FIELDS:
            if name not in fields and name not in mapped_columns:
                column_to_field[name] = name
        defaults = cfg.get("record_defaults") or {}
        origin = str(defaults.get("origin", "real"))
        if origin not in ORIGINS:
            raise UserInputError(
                f"data.record_defaults.origin: {origin!r} is not one of {list(ORIGINS)}"
            )
        return cls(column_to_field, origin, cfg.get("name"))

    def column_for(self, name: str) -> str:
        """The column that holds record field `name` (its own name when none is mapped)."""
        return next((c for c, f in self.column_to_field.items() if f == name), name)


# Identifier-like fields may be integers in a user's file; texts must be strings.
# Fields that link records (erasure by user, the split's groups, a turn's context): a
# blank value would put every record without one in the same user or conversation.
_LINK_FIELDS = ("user_id", "session_id", "parent_id")
_INT_OK = frozenset({"id", "label", "user_id", "session_id", "parent_id"})


def _text(name: str, value: Any, limit: int) -> str | None:
    if value is None:
        return None
    allowed = str | int if name in _INT_OK else str
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise Invalid(
            "wrong_type", f"field {name!r}: expected a string, got {type(value).__name__}"
        )
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        raise Invalid("oversize_field", f"field {name!r}: {len(text)} characters > {limit}")
    return text


def _turn(value: Any, from_text: bool) -> int | None:
    if value is None or (from_text and value == ""):
        return None
    if from_text and isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise Invalid("wrong_type", f"field 'turn': {value[:40]!r} is not an integer") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(
            "wrong_type", f"field 'turn': expected an integer, got {type(value).__name__}"
        )
    if not _INT32[0] <= value <= _INT32[1]:
        raise Invalid("wrong_type", "field 'turn': out of the 32-bit range")
    return value


def _quality(value: Any, from_text: bool) -> float | None:
    if value is None or (from_text and value == ""):
        return None
    if from_text and isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise Invalid(
                "wrong_type", f"field 'quality': {value[:40]!r} is not a number"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(
            "wrong_type", f"field 'quality': expected a number, got {type(value).__name__}"
        )
    try:
        number = float(value)
    except OverflowError:
        raise Invalid("wrong_type", "field 'quality': number out of range") from None
    if not math.isfinite(number):
        raise Invalid("wrong_type", "field 'quality': not a finite number")
    return number


def _timestamp(value: Any, from_text: bool) -> datetime | None:
    if value is None or (from_text and value == ""):
        return None
    try:
        if isinstance(value, datetime):
            stamp = value
        elif isinstance(value, str):
            stamp = datetime.fromisoformat(value.strip())
        elif isinstance(value, int | float) and not isinstance(value, bool):
            stamp = datetime.fromtimestamp(value, tz=UTC)  # a number is Unix seconds
        else:
            raise Invalid(
                "bad_timestamp",
                f"field 'created_at': expected ISO 8601, got {type(value).__name__}",
            )
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)  # naive times are taken as UTC
        return stamp.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        raise Invalid("bad_timestamp", f"field 'created_at': {str(value)[:60]!r}") from None


def _tags(value: Any, from_text: bool) -> list[str]:
    if value is None or (from_text and value == ""):
        return []
    if from_text and isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise Invalid("wrong_type", "field 'tags': invalid JSON list") from None
        else:
            value = [tag.strip() for tag in text.split(",") if tag.strip()]
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise Invalid("wrong_type", "field 'tags': expected a list of strings")
    return value


def _check_tags_size(tags: list[str], limit: int) -> list[str]:
    size = sum(len(tag) for tag in tags)
    if size > limit:
        raise Invalid("oversize_field", f"field 'tags': {size} characters > {limit}")
    return tags


def _metadata(value: Any, from_text: bool) -> dict[str, Any]:
    if value is None or (from_text and value == ""):
        return {}
    if from_text and isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise Invalid("wrong_type", "field 'metadata': invalid JSON object") from None
    if not isinstance(value, dict):
        raise Invalid("wrong_type", "field 'metadata': expected an object")
    return value


def _may_exceed(metadata: dict[str, Any], limit: int) -> bool:
    """Cheap bound: only metadata that could pass `limit` once JSON-escaped is serialised."""
    size = 0
    for key, value in metadata.items():
        if isinstance(value, str):
            size += len(key) + len(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            size += len(key) + len(str(value))
        elif value is None or isinstance(value, bool | float):
            size += len(key) + 32
        else:
            return True  # nested: measure it
    # An escaped character takes at most 6 (\u00XX); keys and quotes add a little more.
    return 6 * size + 8 * len(metadata) > limit


def to_record(
    row: Mapping[str, Any],
    file: str,
    line: int,
    fields: FieldMap,
    settings: ValidateSettings,
    from_text: bool = False,
) -> Record:
    """Map, type-check and coerce one row (`from_text`: CSV, every value a string)."""
    values, extra = _by_field(row, fields)
    limit = settings.max_field_chars
    raw_id = values.get("id")
    record_id = _text("id", raw_id, limit) if raw_id != "" else None
    record_id = record_id or default_id(file, line)
    prompt = _prompt(values.get("prompt"), limit)
    texts = {name: _text(name, values.get(name), limit) for name in _TEXT_FIELDS}
    for name in _LINK_FIELDS:  # a blank id links nothing: an empty CSV cell is no session
        if texts[name] is not None and not texts[name].strip():
            texts[name] = None
    # Checked in this order, so a row with several faults keeps the reason it always had.
    origin = _origin(values.get("origin"), fields.default_origin)
    metadata = _all_metadata(values.get("metadata"), extra, from_text, limit)
    return Record(
        rid=rid_of(record_id),
        id=record_id,
        prompt=prompt,
        response=texts["response"],
        label=texts["label"],
        user_id=texts["user_id"],
        session_id=texts["session_id"],
        parent_id=texts["parent_id"],
        turn=_turn(values.get("turn"), from_text),
        created_at=_timestamp(values.get("created_at"), from_text),
        quality=_quality(values.get("quality"), from_text),
        tags=_check_tags_size(_tags(values.get("tags"), from_text), limit),
        origin=origin,
        source=texts["source"] or fields.default_source,
        metadata=metadata,
        file=file,
        line=line,
    )


def _by_field(row: Mapping[str, Any], fields: FieldMap) -> tuple[dict[str, Any], dict[str, Any]]:
    """The row's values by record field, and its unmapped columns (kept as metadata)."""
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for column, value in row.items():
        name = fields.column_to_field.get(column)
        if name is None:
            extra[str(column)] = value  # unknown columns are kept, not dropped
        else:
            values[name] = value
    return values, extra


def _prompt(value: Any, limit: int) -> str:
    if value is None:
        raise Invalid("missing_prompt", "no 'prompt' field")
    prompt = _text("prompt", value, limit)
    if not prompt:
        raise Invalid("empty_prompt", "'prompt' is empty")
    if is_blank(prompt):  # a prompt no one can see (only U+200B, say) is no prompt
        raise Invalid("empty_prompt", "'prompt' has only whitespace or invisible characters")
    return prompt


def _origin(value: Any, default: str) -> str:
    if value is None or value == "":
        return default
    if value not in ORIGINS:
        raise Invalid("bad_origin", f"field 'origin': {str(value)[:40]!r} is not real|synthetic")
    return value


def _all_metadata(value: Any, extra: dict[str, Any], from_text: bool, limit: int) -> dict[str, Any]:
    """The row's metadata with its unmapped columns, checked against the size limit."""
    metadata = _metadata(value, from_text)
    metadata.update(extra)
    if metadata and _may_exceed(metadata, limit):
        size = len(json.dumps(metadata, ensure_ascii=False, default=str))
        if size > limit:
            raise Invalid("oversize_field", f"metadata: {size} characters > {limit}")
    return metadata
