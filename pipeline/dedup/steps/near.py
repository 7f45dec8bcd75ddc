"""Near duplicates: MinHash + LSH candidates verified by true Jaccard (`dedup.near`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from pipeline.dedup.near_settings import NearDupSettings
from pipeline.dedup.normalize import normalize
from pipeline.dedup.steps.base import Decisions, Step, Survivors, check_fields
from pipeline.record import Record


class NearDedup(Step):
    """Records whose shingle sets have a Jaccard of at least `threshold` to a better-ranked
    one (union-find clusters). Keeps per record only its LSH band keys, in a file; the texts
    of candidate records are fetched back from the staging database to verify them."""

    def __init__(self, **settings: Any) -> None:
        self.settings = NearDupSettings.from_cfg(settings)
        check_fields(self.settings.fields, "fields")
        self._path: Path | None = None
        self._file: IO[bytes] | None = None
        self._n = 0

    def open(self, scratch: Path) -> None:
        self._path = scratch / "bands.u64"  # (n, bands) uint64, row-major
        self._file = self._path.open("wb")

    def observe(self, batch: Sequence[Record], start: int) -> None:
        from pipeline.dedup.minhash import band_keys_of

        assert self._file is not None, "open() first"
        texts = ["\n".join(normalize(getattr(r, f)) for f in self.settings.fields) for r in batch]
        keys = band_keys_of(texts, self.settings)
        self._file.write(np.ascontiguousarray(keys).tobytes())
        self._n += len(batch)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def decide(self, survivors: Survivors) -> Decisions:
        from pipeline.dedup.minhash import near_duplicates_keyed

        alive, fields = survivors.idx, self.settings.fields
        if len(alive) < 2 or self._path is None:
            return Decisions.none("near")

        def fetch(idx: np.ndarray) -> list[str]:
            return ["\n".join(normalize(v) for v in row) for row in survivors.fetch(idx, fields)]

        shape = (self._n, self.settings.bands)
        keys = np.memmap(self._path, dtype=np.uint64, mode="r", shape=shape)
        pairs = near_duplicates_keyed(
            keys, fetch, self.settings, survivors.rank[alive], progress=survivors.progress,
            rows=alive, scratch=self._path.parent,
        )  # fmt: skip
        del keys
        if not pairs:
            return Decisions.none("near")
        local = np.array([(r, o) for r, o, _ in pairs], np.int64)
        sims = np.array([sim for _, _, sim in pairs], np.float64)
        return Decisions(alive[local[:, 0]], alive[local[:, 1]], sims, "near")
