"""How a Searcher ranks and filters: conf/search/default.yaml as a typed value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import UserInputError
from pipeline.search.diversity import DIVERSITIES
from pipeline.search.hybrid import FUSIONS, NORMALIZATIONS


@dataclass(frozen=True)
class SearchSettings:
    mode: str = "hybrid"
    k: int = 10
    fusion: str = "convex"  # convex | rrf: how hybrid fuses the two rankings
    alpha: float = 0.2  # weight of the vector side (convex, and rrf's ranking weights)
    normalization: str = "zscore"  # minmax | zscore | max: convex's score scaling
    rrf_k: int = 60  # RRF constant; 60 is the value of the original paper
    candidates: int = 200  # hits of each ranking that hybrid fuses
    exact_below: int = 5_000  # filters allowing fewer records are searched exactly
    read_ahead: bool | str = "auto"  # auto | true | false: request gathered rows at once
    filtered_ef_max: int = 1024  # cap on the HNSW beam widened for selective filters
    filter_cache: int = 64
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    snippet_chars: int = 160
    threads: int = 1  # FAISS OpenMP threads (process-wide): one query gains nothing from more
    encode_batch: int = 16  # concurrent queries encoded in one forward pass at most (1: off)
    encode_cache: int = 1024  # recent query vectors kept in memory (0: off)
    encode_threads: int = 1  # ONNX Runtime threads of the query encoder (see conf/search)
    diversity: str = "none"  # none | session | mmr: re-rank the candidates (diversity.py)
    mmr_lambda: float = 0.7  # mmr: weight of relevance against novelty, 0..1

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise UserInputError(
                f"search.fusion={self.fusion!r} is unknown; expected one of {', '.join(FUSIONS)}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise UserInputError(
                f"search.normalization={self.normalization!r} is unknown; expected one of "
                f"{', '.join(NORMALIZATIONS)}"
            )
        if self.diversity not in DIVERSITIES:
            raise UserInputError(
                f"search.diversity={self.diversity!r} is unknown; expected one of "
                f"{', '.join(DIVERSITIES)}"
            )
        if self.read_ahead not in (True, False, "auto"):
            raise UserInputError(
                f"search.read_ahead={self.read_ahead!r} is unknown; expected auto, true or false"
            )
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise UserInputError(f"search.mmr_lambda={self.mmr_lambda!r}: expected 0 to 1")
        if not 0.0 <= self.alpha <= 1.0:
            raise UserInputError(f"search.alpha={self.alpha!r}: expected a weight from 0 to 1")

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> SearchSettings:
        known = {k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg}
        return cls(**known)
