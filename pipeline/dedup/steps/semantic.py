"""Semantic duplicates: records whose cached MiniLM vectors are within a cosine threshold
(`dedup.semantic`), after exact and near, with the same keep policy.

The vectors are those of `embed.text` (the prompt, by default) with the `embed` settings and
cache the train and index stages use, so the texts this step encodes are cache hits there:
the kept records' texts in records.parquet are the staged (redacted) texts read here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.dedup.semantic import GuardCounts, Guards, Pairs, apply_guards, clusters
from pipeline.dedup.steps.base import Decisions, Step, Survivors
from pipeline.errors import UserInputError

log = logging.getLogger(__name__)
CHUNK = 8_192  # records fetched and embedded at a time: bounded memory for the texts


@dataclass
class SemanticStats:
    """What the last `decide` saw, for the benchmark and the log."""

    records: int = 0
    encoded: int = 0  # texts run through the encoder (the rest were cache hits)
    candidates: int = 0  # pairs at or above the threshold
    held_back: GuardCounts | None = None
    search: str = ""  # exact | ivf


class SemanticDedup(Step):
    """Connected components of pairs with cosine >= `threshold` that pass the guards; the
    best-ranked member of each survives. Keeps nothing while streaming: the texts of the
    survivors are read back from the staging database a chunk at a time and embedded."""

    def __init__(
        self,
        threshold: float = 0.95,
        same_label: bool = True,
        same_numbers: bool = True,
        same_negations: bool = True,
        whole_texts: bool = True,
        min_records: int = 1000,
        exact_below: int = 20_000,
        clusters_per_record: float = 1 / 500,
        probe: int = 4,
        seed: int = 1,
    ) -> None:
        if not 0.0 < float(threshold) <= 1.0:
            raise UserInputError(f"threshold={threshold!r}: must be in (0, 1]")
        for key, value in (("min_records", min_records), ("exact_below", exact_below),
                           ("probe", probe)):  # fmt: skip
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UserInputError(f"{key}={value!r}: must be a non-negative integer")
        self.threshold = float(threshold)
        self.guards = Guards(bool(same_label), bool(same_numbers), bool(same_negations),
                             bool(whole_texts))  # fmt: skip
        self.min_records = min_records
        self.search = {"exact_below": exact_below, "clusters_per_record": clusters_per_record,
                       "probe": probe, "seed": seed}  # fmt: skip
        self.embed: Any = None  # EmbedSettings, from the config's `embed` at bind()
        self.cache_dir: Path | None = None
        self.stats = SemanticStats()

    def bind(self, root: Path, cfg: Any) -> None:
        """The train and index stages' encoder settings and cache (`embed`, `paths.embed_cache`)."""
        from pipeline.embed import EmbedSettings

        self.embed = EmbedSettings.from_cfg(cfg.embed)
        self.cache_dir = Path(root) / str(cfg.paths.embed_cache)

    def decide(self, survivors: Survivors) -> Decisions:
        alive = survivors.idx
        self.stats = SemanticStats(records=len(alive))
        if len(alive) < max(2, self.min_records):
            # Below min_records the few pairs are not worth loading the encoder for.
            log.info("semantic dedup skipped: %d records < min_records", len(alive))
            return Decisions.none("semantic")
        if self.embed is None:
            raise RuntimeError("SemanticDedup.bind(root, cfg) must run before decide()")
        from pipeline.dedup.semantic import similar_pairs

        vectors, labels = self._vectors(survivors)
        pairs = similar_pairs(vectors, self.threshold, **self.search)
        self.stats.search = "exact" if len(alive) < self.search["exact_below"] else "ivf"
        self.stats.candidates = len(pairs)
        pairs, self.stats.held_back = self._guard(pairs, survivors, labels)
        removed, kept, cosine = clusters(len(alive), pairs, survivors.rank[alive], vectors)
        log.info("semantic dedup: %d candidate pairs, %s held back, %d dropped",
                 self.stats.candidates, self.stats.held_back.as_dict(), len(removed))  # fmt: skip
        return Decisions(alive[removed], alive[kept], cosine, "semantic")

    def counts(self) -> dict[str, Any]:
        """Pairs over the threshold and what each guard held back (all 0 when skipped)."""
        held = self.stats.held_back or GuardCounts()
        return {"candidates": self.stats.candidates, "held_back": held.as_dict()}

    def _vectors(self, survivors: Survivors) -> tuple[np.ndarray, list[str | None]]:
        """The survivors' vectors (through the shared cache) and labels, a chunk at a time."""
        from pipeline.embed import embed, text_of

        parts, labels = [], []
        for start in range(0, len(survivors.idx), CHUNK):
            rows = survivors.fetch(survivors.idx[start : start + CHUNK],
                                   ("prompt", "response", "label"))  # fmt: skip
            texts = [text_of(p or "", r, self.embed) for p, r, _ in rows]
            result = embed(texts, self.embed, self.cache_dir, progress=survivors.progress)
            self.stats.encoded += result.encoded
            parts.append(result.vectors)
            labels.extend(label for _, _, label in rows)
        return np.concatenate(parts), labels

    def _guard(
        self, pairs: Pairs, survivors: Survivors, labels: list[str | None]
    ) -> tuple[Pairs, GuardCounts]:
        """The pairs whose texts pass the guards; only the texts of paired records are read."""
        from pipeline.embed import text_of

        involved = np.unique(np.concatenate([pairs.left, pairs.right]))
        texts: dict[int, str] = {}
        for start in range(0, len(involved), CHUNK):
            local = involved[start : start + CHUNK]
            rows = survivors.fetch(survivors.idx[local], ("prompt", "response"))
            texts.update((int(i), text_of(p or "", r, self.embed))
                         for i, (p, r) in zip(local, rows, strict=True))  # fmt: skip
        truncated = self._truncated(texts)
        return apply_guards(pairs, texts, labels, truncated, self.guards)

    def _truncated(self, texts: dict[int, str]) -> dict[int, bool]:
        """Whether the encoder cut each text at embed.max_length tokens (its vector then
        ignores the rest: t0's long passages with different questions look identical)."""
        if not self.guards.whole_texts or not texts:
            return dict.fromkeys(texts, False)
        from pipeline.embed.models import load_tokenizer, model_dir, tokenize

        limit = self.embed.max_length
        tokenizer = load_tokenizer(model_dir(self.embed.model) / "tokenizer.json", limit + 1)
        ids = tokenize(tokenizer, list(texts.values()))
        return {i: len(t) > limit for i, t in zip(texts, ids, strict=True)}
