"""Parsed rows -> validated records and rejections, with ids checked for uniqueness.

`Collector` streams: it turns one raw row at a time into records, rejections and preference
rows, and remembers only a few dozen bytes per accepted record (its rid, a second hash of
its id and where it was), so a file larger than memory can be collected. `collect` is the
same over an iterable, into lists, for small inputs and tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import xxhash

from pipeline.dedup.shapes import FLAT, Expanded, ShapeReader
from pipeline.dedup.tables import Rejection
from pipeline.dedup.validate import FieldMap, Invalid, ValidateSettings, to_record
from pipeline.io.readers import RawRow
from pipeline.record import USER_FIELDS, Record

Preference = tuple[str, str, str, str | None]  # (record_id, chosen, rejected, source)
# The first id that maps to a rid, looked up only on a true 63-bit rid collision.
Locate = Callable[[int], str | None]

_LINE_BITS = 44  # (file number << 44 | line): lines up to 1.7e13 per file


@dataclass
class Collected:
    """Valid records in input order, rejected rows, and preference feedback."""

    records: list[Record] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    preferences: list[Preference] = field(default_factory=list)
    input_records: int = 0  # candidate records: rows, or turns of a conversation


# The shape counted for a row that could not be parsed, and for one of no known shape.
UNPARSED, UNKNOWN = "unparsed", "unknown"


class Collector:
    """Validate rows one at a time; a bad row becomes a rejection and the stream goes on.

    `feed(row)` yields, in input order, each accepted `Record`, each `Rejection`, and each
    preference row (a tuple) whose record was accepted. `input_records` counts candidate
    records: a flat row is one, a conversation one per turn; `rows_by_shape` and
    `records_by_shape` split the rows and the candidate records by the row's shape.
    """

    def __init__(
        self,
        fields: FieldMap,
        settings: ValidateSettings,
        shapes: ShapeReader | None = None,
        locate: Locate | None = None,
    ) -> None:
        self.fields = fields
        self.settings = settings
        self.shapes = shapes or ShapeReader("auto", fields)
        self.locate = locate
        self.input_records = 0
        self.rows_by_shape: Counter[str] = Counter()
        self.records_by_shape: Counter[str] = Counter()
        # rid -> (xxh32 of the id << 64 | file number << 44 | line) of its first record.
        self._first: dict[int, int] = {}
        self._file_numbers: dict[str, int] = {}
        # Transformed rows already use record field names; their own columns are not remapped.
        self._identity = FieldMap(
            {name: name for name in USER_FIELDS}, fields.default_origin, fields.default_source
        )

    def shape_of(self, row: RawRow) -> str:
        """The shape a row is counted under."""
        if row.reason is not None:
            return UNPARSED
        return self.shapes.shape_of(row.value) or UNKNOWN

    def count_unread(self, row: RawRow) -> None:
        """Count a row the caller dropped before `feed` (an erased user's) as one record."""
        shape = self.shape_of(row)
        self.rows_by_shape[shape] += 1
        self.records_by_shape[shape] += 1

    def feed(self, row: RawRow) -> Iterator[Record | Rejection | Preference]:
        """Records, rejections and preference rows from one raw row."""
        shape, before = self.shape_of(row), self.input_records
        if shape == UNPARSED:
            yield self._reject(row, row.reason or "", row.detail)
        elif shape == UNKNOWN:
            yield self._reject(row, "unknown_shape", self.shapes.unknown(row.value))
        elif shape == FLAT:
            yield self._accept(row, row.value, self.fields)
        else:
            try:
                expanded = self.shapes.expand(shape, row.value, row.file, row.line)
            except Invalid as exc:
                yield self._reject(row, exc.reason, exc.detail)
            else:
                yield from self._expanded(row, expanded)
        self.rows_by_shape[shape] += 1
        self.records_by_shape[shape] += self.input_records - before

    def _expanded(
        self, row: RawRow, expanded: Expanded
    ) -> Iterator[Record | Rejection | Preference]:
        accepted = set()
        for values in expanded.rows:
            out = self._accept(row, values, self._identity)
            if isinstance(out, Record):
                accepted.add(out.id)
            yield out
        for reason, detail, record_id in expanded.rejected:
            yield self._reject(row, reason, detail, record_id)
        for record_id, chosen, rejected in expanded.preferences:
            if record_id in accepted:
                yield (record_id, chosen, rejected, self.fields.default_source)

    def _reject(
        self, row: RawRow, reason: str, detail: str, record_id: str | None = None
    ) -> Rejection:
        self.input_records += 1
        location = f"{row.file}:{row.line}: {detail}"
        return Rejection(
            row.file, row.line, reason, location, record_id or f"{row.file}:{row.line}",
            row.raw_text(),
        )  # fmt: skip

    def _accept(
        self, row: RawRow, values: Mapping[str, Any], mapping: FieldMap
    ) -> Record | Rejection:
        try:
            record = to_record(values, row.file, row.line, mapping, self.settings, row.from_text)
        except Invalid as exc:
            return self._reject(row, exc.reason, exc.detail, _row_id(values, mapping))
        except UnicodeEncodeError:  # a surrogate the reader could not see (e.g. in Parquet)
            detail = "a string holds an unpaired UTF-16 surrogate"
            return self._reject(row, "invalid_unicode", detail)
        check = xxhash.xxh32_intdigest(record.id.encode("utf-8"))
        first = self._first.get(record.rid)
        if first is not None:
            where = self._where(first)
            if first >> 64 == check:
                detail = f"id {record.id!r} already used at {where}"
                return self._reject(row, "duplicate_id", detail, record.id)
            owner = self.locate(record.rid) if self.locate is not None else None
            detail = (
                f"id {record.id!r} hashes to the same rid {record.rid} as id "
                f"{owner if owner is None else repr(owner)} (at {where}); rename one of them"
            )
            return self._reject(row, "rid_collision", detail, record.id)
        number = self._file_numbers.setdefault(row.file, len(self._file_numbers))
        self._first[record.rid] = check << 64 | number << _LINE_BITS | row.line
        self.input_records += 1
        return record

    def _where(self, packed: int) -> str:
        number = (packed >> _LINE_BITS) & 0xFFFFF
        file = next(name for name, n in self._file_numbers.items() if n == number)
        return f"{file}:{packed & ((1 << _LINE_BITS) - 1)}"


def collect(
    rows: Iterable[RawRow],
    fields: FieldMap,
    settings: ValidateSettings,
    shapes: ShapeReader | None = None,
) -> Collected:
    """Validate every row into lists (small inputs; the stage streams with `Collector`)."""
    out = Collected()
    by_rid: dict[int, str] = {}
    collector = Collector(fields, settings, shapes, by_rid.get)
    for row in rows:
        for item in collector.feed(row):
            if isinstance(item, Record):
                out.records.append(item)
                by_rid.setdefault(item.rid, item.id)
            elif isinstance(item, Rejection):
                out.rejections.append(item)
            else:
                out.preferences.append(item)
    out.input_records = collector.input_records
    return out


def _row_id(values: Mapping[str, Any], mapping: FieldMap) -> str | None:
    """The id a rejected row carries, when it has a usable one."""
    for column, name in mapping.column_to_field.items():
        value = values.get(column) if name == "id" else None
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            return str(value)[:1000]
    return None
