"""Parsed rows -> validated records and rejections, with ids checked for uniqueness."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.dedup.tables import Rejection
from pipeline.dedup.transforms import Expanded
from pipeline.dedup.validate import FieldMap, Invalid, ValidateSettings, to_record
from pipeline.io.readers import RawRow
from pipeline.record import USER_FIELDS, Record

Transform = Callable[[Mapping[str, Any], str, int], Expanded]


@dataclass
class Collected:
    """Valid records in input order, rejected rows, and preference feedback."""

    records: list[Record] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    preferences: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    input_records: int = 0  # candidate records: rows, or turns for a transformed dataset


def collect(
    rows: Iterable[RawRow],
    fields: FieldMap,
    settings: ValidateSettings,
    transform: Transform | None = None,
) -> Collected:
    """Validate every row; a bad row becomes a rejection and the loop goes on."""
    out = Collected()
    seen: dict[str, tuple[str, int]] = {}  # id -> where it first appeared
    rid_owner: dict[int, str] = {}
    # Transformed rows already use record field names; their own columns are not remapped.
    identity = FieldMap(
        {name: name for name in USER_FIELDS}, fields.default_origin, fields.default_source
    )

    def reject(row: RawRow, reason: str, detail: str, record_id: str | None = None) -> None:
        out.input_records += 1
        record_id = record_id or f"{row.file}:{row.line}"
        location = f"{row.file}:{row.line}: {detail}"
        out.rejections.append(
            Rejection(row.file, row.line, reason, location, record_id, row.raw_text())
        )

    def accept(row: RawRow, values: Mapping[str, Any], mapping: FieldMap) -> str | None:
        try:
            record = to_record(values, row.file, row.line, mapping, settings, row.from_text)
        except Invalid as exc:
            reject(row, exc.reason, exc.detail, _row_id(values, mapping))
            return None
        except UnicodeEncodeError:  # a surrogate the reader could not see (e.g. in Parquet)
            reject(row, "invalid_unicode", "a string holds an unpaired UTF-16 surrogate")
            return None
        first = seen.get(record.id)
        if first is not None:
            reject(row, "duplicate_id", f"id {record.id!r} already used at {first[0]}:{first[1]}",
                   record.id)  # fmt: skip
            return None
        owner = rid_owner.get(record.rid)
        if owner is not None:
            reject(row, "rid_collision",
                   f"id {record.id!r} hashes to the same rid {record.rid} as id {owner!r}; "
                   "rename one of them", record.id)  # fmt: skip
            return None
        seen[record.id] = (row.file, row.line)
        rid_owner[record.rid] = record.id
        out.input_records += 1
        out.records.append(record)
        return record.id

    for row in rows:
        if row.reason is not None:
            reject(row, row.reason, row.detail)
        elif transform is None:
            accept(row, row.value, fields)
        else:
            try:
                expanded = transform(row.value, row.file, row.line)
            except Invalid as exc:
                reject(row, exc.reason, exc.detail)
                continue
            accepted = {accept(row, values, identity) for values in expanded.rows}
            for record_id, chosen, rejected in expanded.preferences:
                if record_id in accepted:
                    out.preferences.append((record_id, chosen, rejected, fields.default_source))
    return out


def _row_id(values: Mapping[str, Any], mapping: FieldMap) -> str | None:
    """The id a rejected row carries, when it has a usable one."""
    for column, name in mapping.column_to_field.items():
        value = values.get(column) if name == "id" else None
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            return str(value)[:1000]
    return None
