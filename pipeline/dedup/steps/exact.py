"""Exact duplicates: the same normalised text in the configured fields (`dedup.exact`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.dedup.exact import exact_pairs, key_hashes
from pipeline.dedup.normalize import normalize
from pipeline.dedup.steps.base import Decisions, Step, Survivors, check_fields
from pipeline.record import Record


class ExactDedup(Step):
    """Records whose normalised `fields` (NFKC, case, whitespace) hash alike are one cluster;
    the best-ranked member survives. Keeps 16 bytes per record, whatever the text's length."""

    def __init__(self, fields: Sequence[str] = ("prompt", "response")) -> None:
        self.fields = check_fields(fields, "fields")
        self._hashes: list[np.ndarray] = []

    def observe(self, batch: Sequence[Record], start: int) -> None:
        keys = ["\x1f".join(normalize(getattr(r, f)) for f in self.fields) for r in batch]
        self._hashes.append(key_hashes(keys))

    def decide(self, survivors: Survivors) -> Decisions:
        hashes = np.concatenate(self._hashes) if self._hashes else np.zeros((0, 2), np.uint64)
        alive = survivors.idx
        removed, of = exact_pairs(hashes[alive], survivors.rank[alive])
        return Decisions(alive[removed], alive[of], np.ones(len(removed)), "exact")
