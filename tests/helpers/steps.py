"""A curation step that lives outside pipeline/, to show a step is added by config alone
(`dedup.steps` and a section with `_target_: helpers.steps.FirstWordDedup`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.dedup.steps import Decisions, Step, Survivors
from pipeline.record import Record


class FirstWordDedup(Step):
    """Records whose prompt starts with the same (casefolded) word are one cluster; the
    best-ranked member survives. Keeps one small integer per record."""

    def __init__(self, reason: str = "first_word") -> None:
        self.reason = reason
        self._codes: list[int] = []
        self._words: dict[str, int] = {}

    def observe(self, batch: Sequence[Record], start: int) -> None:
        assert start == len(self._codes), "batches arrive in input order"
        for record in batch:
            word = record.prompt.split()[0].casefold()
            self._codes.append(self._words.setdefault(word, len(self._words)))

    def decide(self, survivors: Survivors) -> Decisions:
        alive = survivors.idx
        codes = np.asarray(self._codes, np.int64)[alive]
        order = np.lexsort((survivors.rank[alive], codes))  # by word, best first
        first = np.ones(len(order), bool)
        first[1:] = codes[order][1:] != codes[order][:-1]
        best = order[first][np.cumsum(first) - 1]  # the best of each position's group
        dropped = order[~first]
        return Decisions(alive[dropped], alive[best[~first]], np.ones(len(dropped)), self.reason)
