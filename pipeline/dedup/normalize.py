"""Text normalisation for duplicate detection: Unicode NFKC, case folding, whitespace."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def normalize(text: str | None) -> str:
    """NFKC, casefold and collapse every run of whitespace to one space (ends stripped)."""
    if not text:
        return ""
    # NFKC leaves ASCII unchanged; skipping it there saves most of the time on real data.
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return " ".join(text.casefold().split())


def joined(values: Sequence[str | None]) -> str:
    """Normalised fields joined by a separator that normalisation never produces."""
    return "\x1f".join(normalize(v) for v in values)
