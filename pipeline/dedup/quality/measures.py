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
from functools import cache

from pipeline.text.marks import mark_ranges
from pipeline.text.tokens import is_no_space, shingle_tokens

# Stripped from both ends of a word before its length is taken (Gopher: words without
# punctuation); ASCII punctuation and the common typographic and CJK marks.
_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~“”‘’«»…—–·、。，！？；：（）【】《》「」"
_NEWLINES = re.compile(r"\n+")


@cache
def _not_alphanumeric() -> re.Pattern[str]:
    """A character that is no letter, digit, combining mark or whitespace."""
    marks = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in mark_ranges())
    return re.compile(f"[^\\w\\s{marks}]|_")


def words(text: str) -> list[str]:
    """The text's words: whitespace-split, each no-space-script character on its own."""
    return shingle_tokens(text)


def word_count(tokens: list[str]) -> float:
    """How many words."""
    return float(len(tokens))


def mean_word_length(tokens: list[str]) -> float | None:
    """Mean length of the words written with spaces, punctuation stripped; None when there
    are none (a text only in Chinese, Japanese or Thai, or only punctuation)."""
    # A no-space-script character is one "word" of length 1 by construction: counting it
    # would fail every Chinese text against Gopher's minimum of 3.
    lengths = [
        len(stripped)
        for token in tokens
        if not (len(token) == 1 and is_no_space(token)) and (stripped := token.strip(_PUNCTUATION))
    ]
    return sum(lengths) / len(lengths) if lengths else None


def top_ngram_fraction(tokens: list[str], n: int, chars: int) -> float:
    """Characters of the most frequent word n-gram times its count, over the text's
    characters; 0 when no n-gram occurs twice (datatrove: `find_top_duplicate`)."""
    if len(tokens) < n + 1 or chars == 0:
        return 0.0
    counts = Counter(zip(*(tokens[i:] for i in range(n)), strict=False))
    gram, count = counts.most_common(1)[0]
    if count < 2:  # datatrove counts a unique n-gram: every short prompt would fail
        return 0.0
    return min(1.0, (sum(map(len, gram)) + n - 1) * count / chars)


def dup_ngram_fraction(tokens: list[str], n: int, chars: int) -> float:
    """Characters in word n-grams that repeat an earlier one (a repeat skips n words), over
    the text's characters (datatrove: `find_all_duplicate`)."""
    if len(tokens) < 2 * n or chars == 0:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeated, i = 0, 0
    while i <= len(tokens) - n:
        gram = tuple(tokens[i : i + n])
        if gram in seen:
            repeated += sum(map(len, gram))
            i += n
        else:
            seen.add(gram)
            i += 1
    return min(1.0, repeated / chars)


def repeated_line_fraction(text: str) -> float:
    """Characters in lines that repeat an earlier line, over the characters of all lines
    (Gopher's dup_line_char_frac; blank lines do not count)."""
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
    return len(_not_alphanumeric().findall(text)) / visible
