"""Row-level access scope: which kept records a caller may see, applied by the store itself.

Every reader of records (search hits, session turns, one record, its duplicates, counts,
feedback) takes a `Scope` argument with no default, so a new caller cannot forget it and
leak: an API key's scope comes from the key, and the owner of the files (the CLI, admin
keys) passes `Scope.all()` on purpose. Field names come from a fixed list and values are
bound as parameters, never written into SQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ForbiddenError

# The record fields a key can be restricted on (`pipeline keys create --scope FIELD=v1,v2`).
SCOPE_FIELDS: tuple[str, ...] = ("user_id", "source")


@dataclass(frozen=True)
class Scope(Mapping[str, tuple[str, ...]]):
    """For each restricted field, the values allowed; a record must match every field.

    A read-only mapping (field -> allowed values); empty means every record (`Scope.all()`).
    """

    limits: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        for field, _ in self.limits:
            if field not in SCOPE_FIELDS:
                raise ValueError(f"unknown scope field {field!r}; expected one of {SCOPE_FIELDS}")
        # A field with no allowed value matches no record (fails closed), never every record.

    @classmethod
    def all(cls) -> Scope:
        """Every record: for the files' owner (CLI commands) and unscoped keys only."""
        return cls(())

    @classmethod
    def of(cls, limits: Mapping[str, Sequence[str] | None]) -> Scope:
        """From `{field: values}`; fields given None (unrestricted) are left out."""
        return cls(
            tuple(
                (field, tuple(sorted(set(values))))
                for field, values in sorted(limits.items())
                if values is not None
            )
        )

    def __getitem__(self, field: str) -> tuple[str, ...]:
        for name, values in self.limits:
            if name == field:
                return values
        raise KeyError(field)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self.limits)

    def __len__(self) -> int:
        return len(self.limits)

    @property
    def restricted(self) -> bool:
        """True unless this is `Scope.all()`."""
        return bool(self.limits)

    def sees(self, record: Mapping[str, Any]) -> bool:
        """True when the record (a dict of its fields) is inside the scope."""
        return all(record.get(field) in values for field, values in self.limits)

    def check(self, record: Mapping[str, Any], what: str) -> None:
        """ForbiddenError (exit 5, HTTP 403) when the record lies outside the scope."""
        if not self.sees(record):
            raise ForbiddenError(f"{what} is outside the scope of this API key")

    def sql(self, table: str = "") -> tuple[str, list[Any]]:
        """A SQL predicate with `?` placeholders and its parameters (TRUE for `Scope.all()`)."""
        prefix = f"{table}." if table else ""
        clauses = [f"list_contains(?::VARCHAR[], {prefix}{field})" for field, _ in self.limits]
        return (" AND ".join(clauses) or "TRUE"), [list(values) for _, values in self.limits]


def require_scope(scope: object) -> Scope:
    """`scope` itself, or TypeError: a mapping or a tuple of filters is not a scope."""
    if not isinstance(scope, Scope):
        raise TypeError(f"scope must be a pipeline.store.scope.Scope, not {type(scope).__name__}")
    return scope
