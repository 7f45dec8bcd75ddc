"""The quality filters: each a measure of one text with a lower and/or upper bound.

A filter is built from its section of `dedup.quality.filters` (conf/dedup/default.yaml):
`enabled`, `fields` (which of prompt/response it reads, each measured on its own),
`min_words` (shorter texts are not measured: a ratio over two words says nothing), and its
bounds. `check` returns the first bound a text breaks, as a `Failure` the store keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.dedup.quality import measures as m
from pipeline.dedup.quality.batch import DUP_N, TOP_N, Measured, Prepared
from pipeline.dedup.quality.measures import Words
from pipeline.errors import UserInputError

FIELDS = ("prompt", "response")
# (text, words) -> the measured value, or None when the measure does not apply to the text.
# The words are a `Words`, or the batch kernel's `Prepared` (its length is the word count).
Measure = Callable[[str, Words], float | None]


@dataclass(frozen=True)
class Failure:
    """Why a record is filtered: the filter, the field, the value against the bound."""

    filter: str
    field: str
    value: float
    threshold: float
    bound: str  # "min" or "max"
    detail: str  # e.g. "n=3" (which n-gram), "language=zh" (what was detected)


def _ngram(measure: Callable[[Words, int, int], float], ns: Sequence[int]) -> Any:
    """A measure per n (Gopher's per-n thresholds): (text, words) -> {n: value}."""
    return lambda text, tokens: {n: measure(_words(tokens), n, len(text)) for n in ns}


def _words(tokens: Words | Prepared) -> Words:
    return tokens.words if isinstance(tokens, Prepared) else tokens


def _ascii(tokens: Words | Prepared) -> bool:
    """Whether the batch kernel measured the text's ASCII-only measures already."""
    return isinstance(tokens, Prepared) and tokens.ascii


@dataclass(frozen=True)
class Bounded:
    """A measure with optional bounds (`min`, `max`), or per-n maxima (`max` a list)."""

    name: str
    fields: tuple[str, ...]
    min_words: int
    measure: Callable[[str, Words], Any]
    low: float | None = None
    high: float | Sequence[float] | None = None
    ns: tuple[int, ...] = ()  # the n of each `high` for the n-gram filters
    # A cheap value at least as high as every measured one: below the lowest maximum, the
    # text passes without the exact measure (dup_ngram's greedy scan is a Python loop).
    ceiling: Callable[[str, Words], float] | None = None

    def check(self, field: str, text: str, tokens: Words | Prepared) -> Failure | None:
        """The bound `text` breaks, or None."""
        if len(tokens) < self.min_words:
            return None
        if self.ceiling is not None and self.ceiling(text, tokens) <= min(self.high):  # type: ignore[arg-type]
            return None
        value = self.measure(text, tokens)
        if value is None:
            return None
        if self.ns:  # one maximum per n; the first n over its maximum is the reason
            for n, high in zip(self.ns, self.high, strict=True):  # type: ignore[arg-type]
                if value[n] > high:
                    return Failure(self.name, field, value[n], high, "max", f"n={n}")
            return None
        if self.low is not None and value < self.low:
            return Failure(self.name, field, value, self.low, "min", "")
        if self.high is not None and value > self.high:  # type: ignore[operator]
            return Failure(self.name, field, value, float(self.high), "max", "")  # type: ignore[arg-type]
        return None


def _number(section: Mapping[str, Any], key: str, where: str) -> float | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise UserInputError(f"{where}.{key}={value!r}: must be a number >= 0 or null")
    return float(value)


def _fields(section: Mapping[str, Any], where: str) -> tuple[str, ...]:
    fields = section.get("fields", FIELDS)
    fields = (fields,) if isinstance(fields, str) else tuple(fields)
    bad = [f for f in fields if f not in FIELDS]
    if bad or not fields:
        raise UserInputError(f"{where}.fields: {bad or list(fields)} not in {list(FIELDS)}")
    return fields


# name -> (measure, which bounds it takes, the n of a per-n `max`)
KINDS: dict[str, tuple[Measure | Callable[..., Any], tuple[str, ...], tuple[int, ...]]] = {
    "word_count": (lambda text, w: m.word_count(w), ("min", "max"), ()),
    "mean_word_length": (
        lambda text, w: w.mean_word_length if isinstance(w, Prepared) else m.mean_word_length(text),
        ("min", "max"),
        (),
    ),
    "top_ngram": (_ngram(m.top_ngram_fraction, (2, 3, 4)), ("max",), (2, 3, 4)),
    "dup_ngram": (
        _ngram(m.dup_ngram_fraction, (5, 6, 7, 8, 9, 10)),
        ("max",),
        (5, 6, 7, 8, 9, 10),
    ),
    "repeated_lines": (lambda text, w: m.repeated_line_fraction(text), ("max",), ()),
    "symbol_ratio": (lambda text, w: m.symbol_ratio(text, w), ("max",), ()),
    "non_alpha": (
        lambda text, w: w.non_alpha if _ascii(w) else m.non_alpha_fraction(text),
        ("max",),
        (),
    ),
}
COMMON = {"enabled", "fields", "min_words"}


def build(name: str, section: Mapping[str, Any], where: str) -> Bounded:
    """The filter `name` from its config section; a UserInputError names a bad key."""
    if name not in KINDS:
        raise UserInputError(f"{where}: unknown filter {name!r}; known: {[*KINDS, 'language']}")
    measure, bounds, ns = KINDS[name]
    unknown = set(section) - COMMON - set(bounds)
    if unknown:
        raise UserInputError(f"{where}: unknown keys {sorted(unknown)}; expected {sorted(bounds)}")
    high: Any
    if ns:
        high = section.get("max")
        if not isinstance(high, Sequence) or len(high) != len(ns):
            raise UserInputError(f"{where}.max: one maximum per n in {list(ns)}")
        high = tuple(_number({"max": h}, "max", where) for h in high)
    else:
        high = _number(section, "max", where)
    low = _number(section, "min", where) if "min" in bounds else None
    ceiling = {"dup_ngram": _dup_ceiling, "top_ngram": _top_ceiling}.get(name)
    return Bounded(
        name, _fields(section, where), _min_words(section, where), measure, low, high, ns, ceiling
    )


def _dup_ceiling(text: str, tokens: Words | Prepared) -> float:
    if isinstance(tokens, Prepared):  # computed for the whole batch by the kernel
        return tokens.dup_ceiling
    return m.dup_ngram_bound(tokens, DUP_N, len(text))


def _top_ceiling(text: str, tokens: Words | Prepared) -> float:
    if isinstance(tokens, Prepared):
        return tokens.top_ceiling
    return m.top_ngram_bound(tokens, TOP_N, len(text))


def may_fail(rule: Any, texts: Measured) -> np.ndarray:
    """False where the batch kernel's measures prove a text passes `rule`, True where it may
    fail (or the rule is not one the kernel measures): `Bounded.check` decides those. Each
    test below is `check`'s own, on the same values, or on a ceiling of them."""
    maybe = texts.present.copy()
    if not isinstance(rule, Bounded):  # the language identifier: measured in Python
        return maybe
    maybe &= texts.count >= rule.min_words
    if rule.ceiling is not None:  # the n-gram filters: exact only above the lowest maximum
        if any(h is None for h in rule.high):  # type: ignore[union-attr]
            return maybe
        ceiling = texts.top_ceiling if rule.name == "top_ngram" else texts.dup_ceiling
        return maybe & (ceiling > min(rule.high))  # type: ignore[arg-type]
    if rule.name == "repeated_lines":
        return maybe & texts.line_may_repeat
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {
            "word_count": texts.count.astype(np.float64),
            "mean_word_length": texts.mean_word_length,  # NaN (None) passes, as in check
            "symbol_ratio": np.where(texts.count > 0, texts.symbols / texts.count, 0.0),
            "non_alpha": texts.non_alpha_ceiling,  # the exact value for an ASCII text
        }
    if rule.name not in values:
        return maybe
    value = values[rule.name]
    out = np.zeros(len(value), np.bool_)
    if rule.low is not None:
        out |= value < rule.low
    if rule.high is not None:
        out |= value > rule.high
    return maybe & out


def _min_words(section: Mapping[str, Any], where: str) -> int:
    value = section.get("min_words", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserInputError(f"{where}.min_words={value!r}: must be an integer >= 0")
    return value
