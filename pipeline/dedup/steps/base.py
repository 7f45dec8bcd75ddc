"""The curation-step protocol: what every dedup step (exact, near, a quality filter, ...) is.

A step is built by Hydra from its config section (`_target_`). The stage streams every
record through `observe` a batch at a time, so a step keeps per record only what it needs
(a hash, band keys in a file) and never the texts; once everything is staged, `decide` gets
the records the earlier steps kept and returns the ones it drops, each with a reason and
the record kept in its place. The stage runs the steps in config order, stores every drop
and derives the report's counts and its accounting equation from the step list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.record import Record

# The staged `fields` of the given input positions, in the order asked (one bounded batch).
Fetch = Callable[[np.ndarray, Sequence[str]], list[tuple[str | None, ...]]]
TEXT_FIELDS = ("prompt", "response", "label", "user_id", "session_id", "parent_id", "source")


@dataclass(frozen=True)
class Survivors:
    """What a step decides over: the records still kept and how to read them back."""

    idx: np.ndarray  # input positions still kept, ascending (int64)
    rank: np.ndarray  # keep-policy rank of every input position, 0 = best (dedup.keep_policy)
    fetch: Fetch  # staged (redacted) fields of some positions, for the few a step must read
    progress: bool = False  # whether to draw progress bars (a terminal is attached)


@dataclass(frozen=True)
class Decisions:
    """The records a step drops: each with the record kept in its place, a score, a reason."""

    idx: np.ndarray  # dropped input positions (a subset of Survivors.idx)
    of_idx: np.ndarray  # the position of the record each one duplicates
    score: np.ndarray  # similarity to that record (1.0 for an exact copy)
    reason: str | Sequence[str]  # one reason for all, or one per dropped record

    @classmethod
    def none(cls, reason: str) -> Decisions:
        """No record dropped."""
        empty = np.zeros(0, np.int64)
        return cls(empty, empty, np.zeros(0), reason)

    def reasons(self) -> list[str]:
        """One reason per dropped record."""
        if isinstance(self.reason, str):
            return [self.reason] * len(self.idx)
        return list(self.reason)

    def check(self, survivors: Survivors, step: str) -> None:
        """Fail naming `step` when it drops a record twice or one already dropped."""
        n, alive = len(survivors.rank), survivors.idx
        sizes = {len(self.idx), len(self.of_idx), len(self.score), len(self.reasons())}
        if len(sizes) != 1:
            raise ValueError(f"dedup step {step!r}: decision columns differ in length {sizes}")
        if len(np.unique(self.idx)) != len(self.idx) or not np.isin(self.idx, alive).all():
            raise ValueError(f"dedup step {step!r}: drops a record twice or one not kept")
        if len(self.of_idx) and (self.of_idx.min() < 0 or self.of_idx.max() >= n):
            # Every duplicate is stored with the record kept in its place; a drop with no
            # such record is a `Filtered` decision, stored in the `filtered` table.
            raise ValueError(f"dedup step {step!r}: of_idx outside the {n} staged records")


@dataclass(frozen=True)
class Filtered(Decisions):
    """Records a filter drops on their own (no record kept in their place): each with the
    measured value (`score`), the filter (`reason`), the threshold and which bound it broke.
    The stage stores them in the `filtered` table and counts them under `filtered`."""

    threshold: np.ndarray  # the bound each value broke
    bound: Sequence[str]  # "min", "max", or "language" (a language not allowed)
    detail: Sequence[str]  # which field, and what more the filter says (n=3, language=zh)

    @classmethod
    def of(
        cls,
        idx: np.ndarray,
        value: np.ndarray,
        threshold: np.ndarray,
        reason: Sequence[str],
        bound: Sequence[str],
        detail: Sequence[str],
    ) -> Filtered:
        """Filtered records (of_idx is -1: nothing is kept in their place)."""
        idx = np.asarray(idx, np.int64)
        none = np.full(len(idx), -1, np.int64)
        value, threshold = np.asarray(value, np.float64), np.asarray(threshold, np.float64)
        return cls(idx, none, value, list(reason), threshold, list(bound), list(detail))

    def check(self, survivors: Survivors, step: str) -> None:
        sizes = {len(self.idx), len(self.threshold), len(self.bound), len(self.detail)}
        if len(sizes) != 1:
            raise ValueError(f"dedup step {step!r}: filtered columns differ in length {sizes}")
        if (self.of_idx != -1).any():
            raise ValueError(f"dedup step {step!r}: a filtered record keeps no record in its place")
        Decisions(self.idx, np.zeros_like(self.idx), self.score, self.reason).check(survivors, step)


class Step:
    """A curation step. Subclasses set what they keep per record in `observe` and implement
    `decide`; `open` and `close` bracket the streaming (a step may keep a file there)."""

    def bind(self, root: Path, cfg: Any) -> None:
        """Called once before streaming with the project root and the whole config, for a step
        that shares another stage's settings or files (semantic: `embed` and its cache)."""

    def open(self, scratch: Path) -> None:
        """Start streaming; `scratch` is this step's own directory, removed after the run."""

    def observe(self, batch: Sequence[Record], start: int) -> None:
        """See one staged batch of (redacted) records at input positions start, start + 1, ..."""

    def close(self) -> None:
        """Streaming is over (or failed): release what `open` took."""

    def decide(self, survivors: Survivors) -> Decisions:
        """The records among `survivors` this step drops."""
        raise NotImplementedError

    def counts(self) -> dict[str, Any]:
        """What the last `decide` counted beyond its drops, for the report's steps.<name> (and
        so MLflow and `dvc metrics diff`); the same keys on every run, nothing volatile."""
        return {}


def check_fields(fields: Sequence[str], key: str) -> tuple[str, ...]:
    """A step's text fields, or a UserInputError naming `key`."""
    from pipeline.errors import UserInputError

    fields = (fields,) if isinstance(fields, str) else tuple(fields)
    bad = [f for f in fields if f not in TEXT_FIELDS]
    if bad or not fields:
        raise UserInputError(f"{key}: {bad or list(fields)} not in {list(TEXT_FIELDS)}")
    return fields
