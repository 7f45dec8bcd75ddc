"""What the quality filters measure in one text: pure functions, in any script.

The measures are the Gopher rules as datatrove implements them (GopherQualityFilter,
GopherRepetitionFilter) and NeMo Curator's symbol and non-alphanumeric ratios, with two
changes for chat turns instead of web pages, each said where it is made: words are the
shingle tokens of pipeline/text (a Chinese or Thai character is a word of its own, so a
sentence in those scripts is not one long "word"), and an n-gram counts as repeated only
when it occurs at least twice (datatrove counts a text's only 2-gram as its "top" one, so
every two-word prompt fails it).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache, cached_property

import numpy as np

from pipeline.text.marks import mark_ranges
from pipeline.text.tokens import NO_SPACE_RANGES, shingle_tokens

# Not counted in a word's length (Gopher: words without punctuation); ASCII punctuation
# and the common typographic and CJK marks. A word of punctuation only is no word.
_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~“”‘’«»…—–·、。，！？；：（）【】《》「」"
_DROP_PUNCTUATION = re.compile("[" + re.escape(_PUNCTUATION) + "]+")  # faster than a dict translate
_NEWLINES = re.compile(r"\n+")


_NOT_WORD = re.compile(r"[^\w\s]|_")  # \w: letters and digits of every script, not marks
# The ASCII fast paths: bytes.translate runs in C at memory speed, where a regex or a str
# translate with a dict visits every character in Python objects (most t0 text is ASCII).
# What `str.isalnum() or str.isspace()` holds for (re's \w minus "_" and \s): deleted, the
# rest is what _NOT_WORD finds. \x1c-\x1f are spaces to str.split() but not to bytes.split().
_ASCII_WORD_OR_SPACE = bytes(c for c in range(128) if chr(c).isalnum() or chr(c).isspace())
_ASCII_PUNCTUATION = bytes(c for c in range(128) if chr(c) in _PUNCTUATION)
_ASCII_SPACES = bytes.maketrans(b"\x1c\x1d\x1e\x1f", b"    ")


@cache
def _no_space() -> re.Pattern[str]:
    """A character of a script written without spaces (pipeline/text)."""
    return re.compile("[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in NO_SPACE_RANGES) + "]")


@cache
def _marks() -> re.Pattern[str]:
    """A combining mark (Thai, Hindi, Arabic vowel signs...), which `\\w` does not match."""
    return re.compile("[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in mark_ranges()) + "]")


def words(text: str) -> Words:
    """The text's words: whitespace-split, each no-space-script character on its own."""
    return Words(shingle_tokens(text))


def word_count(tokens: list[str]) -> float:
    """How many words."""
    return float(len(tokens))


def mean_word_length(text: str) -> float | None:
    """Mean length of the words written with spaces, punctuation left out; None when there
    are none (a text only in Chinese, Japanese or Thai, or only punctuation)."""
    # A no-space-script character is one "word" of length 1 by construction: counting it
    # would fail every Chinese text against Gopher's minimum of 3. String methods only:
    # a loop over the words costs more than every other measure together on long prompts.
    if text.isascii():
        spaced = text.encode("ascii").translate(_ASCII_SPACES, _ASCII_PUNCTUATION).split()
        chars = len(b"".join(spaced))
    else:
        spaced = _no_space().sub(" ", _DROP_PUNCTUATION.sub("", text)).split()
        chars = len("".join(spaced))
    return chars / len(spaced) if spaced else None


class Words(list[str]):
    """A text's words, with the hashes and lengths the n-gram measures share, made once."""

    @cached_property
    def ends(self) -> np.ndarray:
        """Characters in the first k words, for k = 0..len: a span's length is a difference."""
        lengths = np.fromiter(map(len, self), np.int64, len(self))
        return np.concatenate(([0], np.cumsum(lengths)))

    @cached_property
    def _ids(self) -> np.ndarray:
        # str hashes vary between processes, but only equality within one text is used:
        # two different n-grams colliding in 64 bits is as good as impossible.
        return np.fromiter(map(hash, self), np.int64, len(self)).view(np.uint64)

    def grams(self, n: int) -> np.ndarray:
        """A 64-bit hash of every word n-gram, in text order."""
        cache = self.__dict__.setdefault("_grams", {1: self._ids})
        if n not in cache:  # polynomial hash, wrapping in uint64, from the (n-1)-grams
            shorter, m = self.grams(n - 1), len(self) - n + 1
            cache[n] = shorter[:m] * _PRIME + self._ids[n - 1 : n - 1 + m]
        return cache[n]

    def repeats(self, n: int) -> bool:
        """Whether some word n-gram occurs twice (never, when no shorter one does)."""
        known = self.__dict__.setdefault("_repeats", {})
        if any(not known[k] for k in known if k <= n):
            return False
        if n not in known:  # a Python set: numpy's unique costs more on a few hundred words
            grams = self.grams(n).tolist()
            known[n] = len(set(grams)) < len(grams)
        return known[n]


_PRIME = np.uint64(1099511628211)


def top_ngram_fraction(tokens: Words, n: int, chars: int) -> float:
    """Characters of the most frequent word n-gram times its count, over the text's
    characters; 0 when no n-gram occurs twice (datatrove: `find_top_duplicate`)."""
    if len(tokens) < n + 1 or chars == 0:
        return 0.0
    _, first, counts = np.unique(tokens.grams(n), return_index=True, return_counts=True)
    top = int(counts.max())
    if top < 2:  # datatrove counts a unique n-gram: every short prompt would fail
        return 0.0
    at = int(first[counts == top].min())  # Counter.most_common: the first seen of the most
    length = int(tokens.ends[at + n] - tokens.ends[at]) + n - 1  # joined by single spaces
    return min(1.0, length * top / chars)


def top_ngram_bound(tokens: Words, n: int, chars: int) -> float:
    """At least `top_ngram_fraction` for every m from 2 to n: an m-gram occurs no more often
    than its first two words, and spans no more characters than the longest n-word window."""
    if len(tokens) < 3 or chars == 0 or not tokens.repeats(2):
        return 0.0
    top = max(Counter(tokens.grams(2).tolist()).values())
    span = min(n, len(tokens))
    widest = int((tokens.ends[span:] - tokens.ends[:-span]).max()) + span - 1
    return top * widest / chars


def dup_ngram_bound(tokens: Words, n: int, chars: int) -> float:
    """At least `dup_ngram_fraction` for every m >= n: the characters of the words covered
    by some n-gram that occurred earlier (a repeated m-gram is made of repeated n-grams)."""
    if len(tokens) < 2 * n or chars == 0 or not tokens.repeats(n):
        return 0.0
    grams = tokens.grams(n)
    # Where an n-gram seen before starts (a first occurrence repeats nothing).
    later = np.ones(len(grams), bool)
    later[np.unique(grams, return_index=True)[1]] = False
    at = np.flatnonzero(later)
    size = len(tokens) + 1
    depth = np.bincount(at, minlength=size) - np.bincount(at + n, minlength=size)
    covered = np.cumsum(depth)[:-1] > 0
    return float(np.diff(tokens.ends)[covered].sum()) / chars


def dup_ngram_fraction(tokens: Words, n: int, chars: int) -> float:
    """Characters in word n-grams that repeat an earlier one (a repeat skips n words), over
    the text's characters (datatrove: `find_all_duplicate`)."""
    if len(tokens) < 2 * n or chars == 0:
        return 0.0
    if not tokens.repeats(5 if n > 5 else n):  # no repeated 5-gram, none longer: most texts
        return 0.0
    hashes, ends = tokens.grams(n).tolist(), tokens.ends.tolist()
    seen: set[int] = set()
    repeated, i = 0, 0
    while i < len(hashes):
        if hashes[i] in seen:
            repeated += ends[i + n] - ends[i]
            i += n
        else:
            seen.add(hashes[i])
            i += 1
    return min(1.0, repeated / chars)


def repeated_line_fraction(text: str) -> float:
    """Characters in lines that repeat an earlier line, over the characters of all lines
    (Gopher's dup_line_char_frac; blank lines do not count)."""
    if "\n" not in text:  # one line at most (most prompts): nothing repeats
        return 0.0
    lines = [line for line in _NEWLINES.split(text.strip()) if line.strip()]
    if len(lines) < 2:
        return 0.0
    seen: set[str] = set()
    repeated = 0
    for line in lines:
        if line in seen:
            repeated += len(line)
        seen.add(line)
    return repeated / max(1, sum(map(len, lines)))


def symbol_ratio(text: str, tokens: list[str]) -> float:
    """Hash signs and ellipses per word (Gopher, NeMo Curator's SymbolsToWordsFilter)."""
    if not tokens:
        return 0.0
    symbols = text.count("#") + text.count("...") + text.count("…")
    return symbols / len(tokens)


def non_alpha_fraction(text: str) -> float:
    """Share of the non-space characters that are no letter, digit or combining mark."""
    # Over non-space characters, unlike NeMo Curator's ratio over all characters: its
    # spaces make ordinary prose 15-20% "non-alphanumeric" and a Chinese text, which has
    # none, look cleaner than the same English. Digits count as text: maths prompts are real.
    visible = len("".join(text.split()))
    if visible == 0:
        return 0.0
    if text.isascii():
        return len(text.encode("ascii").translate(None, _ASCII_WORD_OR_SPACE)) / visible
    found = "".join(_NOT_WORD.findall(text))
    marks = 0 if found.isascii() else len(_marks().findall(found))
    return (len(found) - marks) / visible
