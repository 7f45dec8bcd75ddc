"""Quality filters (`dedup.quality`): heuristics of the kind datatrove and NeMo Curator apply,
and a language identifier, each switchable, with its bounds in conf/dedup/default.yaml.

A record fails when any field a filter reads breaks one of its bounds; the first filter
(in config order) that it fails is the one stored in the `filtered` table with the
measured value and the threshold. Measured in `observe`, so the step keeps per record
only the few records that fail, never the texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.dedup.quality.batch import Prepared, measure
from pipeline.dedup.quality.filters import Failure, build, may_fail
from pipeline.dedup.quality.language import build_language
from pipeline.dedup.quality.measures import Words, words
from pipeline.dedup.steps.base import Decisions, Filtered, Step, Survivors
from pipeline.errors import UserInputError
from pipeline.record import Record


def build_filters(filters: Mapping[str, Any]) -> list[Any]:
    """The enabled filters of `dedup.quality.filters`, in config order."""
    out = []
    for name, section in (filters or {}).items():
        where = f"filters.{name}"
        if not isinstance(section, Mapping):
            raise UserInputError(f"{where}: expected a section with enabled, fields, bounds")
        if not section.get("enabled", True):
            continue
        out.append(build_language(section, where) if name == "language" else
                   build(name, section, where))  # fmt: skip
    return out


def first_failure(
    filters: Sequence[Any], record: Any, tokens: dict[str, Words | Prepared] | None = None
) -> Failure | None:
    """The first bound `record` (anything with prompt and response) breaks, or None.
    `tokens`: each field's words when already known (the batch kernel's `Prepared`)."""
    return _first(((rule, field) for rule in filters for field in rule.fields), record, tokens)


def _first(
    checks: Iterable[tuple[Any, str]], record: Any, tokens: dict[str, Words | Prepared] | None
) -> Failure | None:
    """The first failure of `checks` ((filter, field) pairs, in config order), or None."""
    tokens = {} if tokens is None else tokens
    for rule, field in checks:
        text = getattr(record, field)
        if text is None:  # no response: nothing to measure
            continue
        if field not in tokens:
            tokens[field] = words(text)
        failure = rule.check(field, text, tokens[field])
        if failure is not None:
            return failure
    return None


class QualityFilter(Step):
    """Drops the records that fail a quality filter; they go to the `filtered` table."""

    def __init__(self, filters: Mapping[str, Any] | None = None) -> None:
        self.filters = build_filters(filters or {})
        self._failed: dict[int, Failure] = {}

    def observe(self, batch: Sequence[Record], start: int) -> None:
        if not self.filters:
            return
        fields = sorted({field for rule in self.filters for field in rule.fields})
        # Every field's measures in one compiled pass over the batch; a (filter, field) the
        # kernel proves passed is skipped, so the first failure is the one first_failure finds.
        measured = {f: measure([getattr(r, f) for r in batch]) for f in fields}
        plan = [
            (rule, f, may_fail(rule, measured[f])) for rule in self.filters for f in rule.fields
        ]
        suspects = np.logical_or.reduce([maybe for *_, maybe in plan])
        for offset in np.flatnonzero(suspects).tolist():
            known = {f: p for f in fields if (p := measured[f].item(offset)) is not None}
            checks = [(rule, f) for rule, f, maybe in plan if maybe[offset]]
            failure = _first(checks, batch[offset], known)
            if failure is not None:
                self._failed[start + offset] = failure

    def decide(self, survivors: Survivors) -> Decisions:
        alive = set(survivors.idx.tolist())
        idx = sorted(i for i in self._failed if i in alive)
        fails = [self._failed[i] for i in idx]
        return Filtered.of(
            np.array(idx, np.int64),
            np.array([f.value for f in fails]),
            np.array([f.threshold for f in fails]),
            [f.filter for f in fails],
            [f.bound for f in fails],
            [" ".join(filter(None, (f.field, f.detail))) for f in fails],
        )
