"""`dedup.near` of the config: the settings of MinHash + LSH near-duplicate detection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import UserInputError


@dataclass(frozen=True)
class NearDupSettings:
    """`dedup.near` of the config."""

    enabled: bool = True
    fields: tuple[str, ...] = ("prompt", "response")  # joined by the caller with "\n"
    shingle: str = "word"  # word n-grams (whitespace tokens) or char n-grams
    ngram: int = 5  # tokens per shingle; shorter texts are one whole-text shingle
    num_perm: int = 128  # MinHash permutations = bands x rows
    bands: int = 16  # 16 x 8 rows: a pair at Jaccard 0.8 becomes a candidate with p > 0.99
    threshold: float = 0.8  # verified true Jaccard needed to call a pair a near-duplicate
    seed: int = 1  # hash seeds: same seed and input, same output
    workers: int = 2  # threads for the compiled kernels

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> NearDupSettings:
        """Build from the `dedup.near` mapping, failing on unknown or invalid keys (Hydra's
        own keys, such as `_target_`, are not settings)."""
        unknown = sorted(k for k in set(cfg) - set(cls.__dataclass_fields__) if k[:1] != "_")
        if unknown:
            raise UserInputError(f"config dedup.near: unknown key(s) {', '.join(unknown)}")
        values = {k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg}
        if "fields" in values:
            fields = values["fields"]
            values["fields"] = (fields,) if isinstance(fields, str) else tuple(fields)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise UserInputError naming the first invalid `dedup.near` key."""
        problems = [
            ("shingle", self.shingle not in ("word", "char"), "must be 'word' or 'char'"),
            ("ngram", not (isinstance(self.ngram, int) and self.ngram >= 1), "must be >= 1"),
            ("num_perm", not (isinstance(self.num_perm, int) and self.num_perm >= 1), ">= 1"),
            ("bands", not (isinstance(self.bands, int) and self.bands >= 1), "must be >= 1"),
            ("threshold", not (0.0 < float(self.threshold) <= 1.0), "must be in (0, 1]"),
            ("workers", not (isinstance(self.workers, int) and self.workers >= 1), ">= 1"),
            ("fields", not self.fields, "must name at least one field"),
        ]
        for key, bad, why in problems:
            if bad:
                raise UserInputError(f"config dedup.near.{key}={getattr(self, key)!r}: {why}")
        if self.num_perm % self.bands:
            raise UserInputError(
                f"config dedup.near.bands={self.bands}: must divide num_perm={self.num_perm}"
            )
