"""Build the configured steps and run them in order over the staged records."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.dedup.steps.base import Decisions, Fetch, Filtered, Step, Survivors
from pipeline.errors import UserInputError


@dataclass(frozen=True)
class StepResult:
    """One step's before/after counts, its drops by reason, and its time."""

    name: str
    input: int  # records the step saw (kept by the steps before it)
    decisions: Decisions
    seconds: float
    by_reason: dict[str, int] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)  # the step's own (Step.counts)

    @property
    def dropped(self) -> int:
        return len(self.decisions.idx)


def build_steps(dedup: Mapping[str, Any]) -> dict[str, Step]:
    """The steps named in `dedup.steps`, in that order, each built by Hydra from the section
    of the same name; a section with `enabled: false` is skipped."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    names = list(dedup.get("steps") or [])
    if len(set(names)) != len(names):
        raise UserInputError(f"dedup.steps: {names} names a step twice")
    steps: dict[str, Step] = {}
    for name in names:
        section = dedup.get(name)
        if not isinstance(section, Mapping) or "_target_" not in section:
            raise UserInputError(
                f"dedup.steps: {name!r} needs a section dedup.{name} with _target_"
            )
        if not section.get("enabled", True):
            continue
        options = {k: v for k, v in section.items() if k != "enabled"}
        try:
            step = instantiate(options, _convert_="all")
        except InstantiationException as exc:
            cause = exc.__cause__
            if isinstance(cause, UserInputError):
                raise UserInputError(f"dedup.{name}: {cause}") from cause
            raise UserInputError(f"dedup.{name}: {exc}".splitlines()[0]) from exc
        if not isinstance(step, Step):
            raise UserInputError(f"dedup.{name}._target_: {type(step).__name__} is not a Step")
        steps[name] = step
    return steps


# How a step's decisions are made: (name, step, survivors) -> Decisions. The local engine
# asks the step; the Ray engine (pipeline/dedup/ray_engine.py) decides some steps on Ray.
Decide = Callable[[str, Step, Survivors], Decisions]


def run_steps(
    steps: Mapping[str, Step],
    rank: np.ndarray,
    fetch: Fetch,
    progress: bool = False,
    decide: Decide | None = None,
) -> list[StepResult]:
    """Each step decides over the records the steps before it kept, in order."""
    alive = np.arange(len(rank), dtype=np.int64)
    results = []
    for name, step in steps.items():
        begin = time.perf_counter()
        survivors = Survivors(alive, rank, fetch, progress)
        decisions = step.decide(survivors) if decide is None else decide(name, step, survivors)
        decisions.check(survivors, name)
        seconds = round(time.perf_counter() - begin, 3)
        by_reason = dict(sorted(Counter(decisions.reasons()).items()))
        # A duck-typed step (no Step subclass) has no counts of its own.
        counts = step.counts() if hasattr(step, "counts") else {}
        results.append(StepResult(name, len(alive), decisions, seconds, by_reason, counts))
        alive = np.setdiff1d(alive, decisions.idx, assume_unique=True)
    return results


def decision_table(results: list[StepResult]) -> Any:
    """Every drop as (idx, of_idx, method, similarity, threshold, bound, detail) rows for the
    store, in step order; a filter's drops have of_idx -1 and a threshold, duplicates none."""
    import pyarrow as pa

    parts = [r.decisions for r in results]
    empty = np.zeros(0, np.int64)

    def filtered(d: Decisions, column: str) -> list[Any]:
        if isinstance(d, Filtered):
            return [v.item() if isinstance(v, np.generic) else v for v in getattr(d, column)]
        return [None] * len(d.idx)

    return pa.table({
        "idx": np.concatenate([empty, *(d.idx for d in parts)]).astype(np.int64),
        "of_idx": np.concatenate([empty, *(d.of_idx for d in parts)]).astype(np.int64),
        "method": [reason for d in parts for reason in d.reasons()],
        "similarity": np.concatenate([np.zeros(0), *(d.score for d in parts)]).astype(np.float64),
        "threshold": pa.array([v for d in parts for v in filtered(d, "threshold")], pa.float64()),
        "bound": pa.array([v for d in parts for v in filtered(d, "bound")], pa.string()),
        "detail": pa.array([v for d in parts for v in filtered(d, "detail")], pa.string()),
    })  # fmt: skip


def filtered_counts(results: list[StepResult]) -> dict[str, Any]:
    """The report's `filtered`: records the filter steps dropped, by filter and by step."""
    steps = [r for r in results if isinstance(r.decisions, Filtered)]
    by_filter: Counter[str] = Counter()
    for r in steps:
        by_filter.update(r.by_reason)
    return {"total": sum(r.dropped for r in steps),
            "by_filter": dict(sorted(by_filter.items())),
            "by_step": {r.name: r.dropped for r in steps}}  # fmt: skip
