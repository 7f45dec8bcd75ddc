"""Tokens for every script: one definition for near-duplicate shingles and keyword search.

Most scripts put spaces between words; Chinese, Japanese, Thai, Lao, Khmer and Myanmar do
not, so a whole sentence in them is one "word" to a space or `\\b\\w+\\b` split. Here every
character of those scripts (`NO_SPACE_RANGES`) is a unit of its own:

- shingle tokens (dedup, `shingle_tokens`): the text split on whitespace as str.split()
  does, and each no-space-script character cut out as a token of its own. Text without
  such characters tokenizes exactly as before, so English results are unchanged; the
  compiled kernel in pipeline/dedup/shingles.py implements the same rule on UTF-8 bytes.
- keyword terms (BM25 index and queries, `keyword_terms`): NFKC and case folded, then
  words (runs of letters, digits, `_` and the combining marks Hindi, Arabic and others
  write with) of 1-40 characters, and each run of no-space-script characters as its
  overlapping character bigrams (a one-character run as itself; a character carries the
  vowel and tone marks written on it), as Lucene's CJK analyzer does: a query's run
  matches wherever its bigrams occur, with no dictionary to disagree between query and
  document.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from functools import cache

from pipeline.text.marks import mark_ranges

# Scripts written without spaces between words (inclusive code point ranges, sorted, and
# all at or above U+0800: three or four UTF-8 bytes). Their punctuation and currency signs
# are left out, so a full stop is not a unit of text.
NO_SPACE_RANGES: tuple[tuple[int, int], ...] = (
    (0x0E01, 0x0E3E),  # Thai letters and vowels (not U+0E3F, the baht sign)
    (0x0E40, 0x0E4E),  # Thai vowels, tone marks
    (0x0E50, 0x0E59),  # Thai digits
    (0x0E81, 0x0EFF),  # Lao
    (0x1000, 0x1049),  # Myanmar (not U+104A/B, its section marks)
    (0x104C, 0x109F),
    (0x1780, 0x17D3),  # Khmer (not U+17D4-17DA, its punctuation, and U+17DB, the riel)
    (0x17DC, 0x17FF),
    (0x19E0, 0x19FF),  # Khmer symbols
    (0x2E80, 0x2FDF),  # CJK and Kangxi radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3031, 0x3035),  # kana repeat marks
    (0x3038, 0x303C),
    (0x3041, 0x30FF),  # Hiragana, Katakana (incl. ー)
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA9E0, 0xA9FF),  # Myanmar extended-B
    (0xAA60, 0xAA7F),  # Myanmar extended-A
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # halfwidth Katakana
    (0x1AFF0, 0x1B16F),  # Kana extended, supplement
    (0x20000, 0x323AF),  # CJK extensions B-H, compatibility supplement
)

MAX_WORD = 40  # longer runs (base64, URLs glued together) are not words
_PLAIN_WORD = re.compile(rf"\b\w{{1,{MAX_WORD}}}\b")  # the words of text without those


def _class(ranges: tuple[tuple[int, int], ...]) -> str:
    """A regex character class body for these code point ranges."""
    return "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges)


def is_no_space(char: str) -> bool:
    """Whether `char` belongs to a script written without spaces between words."""
    point = ord(char)
    return any(lo <= point <= hi for lo, hi in NO_SPACE_RANGES)


_NS = _class(NO_SPACE_RANGES)
# A no-space-script character, or a run of anything else that is not whitespace.
_SHINGLE_TOKEN = re.compile(f"[{_NS}]|[^\\s{_NS}]+")


def shingle_tokens(text: str) -> list[str]:
    """The tokens word shingles are made of: str.split() words, no-space-script characters
    each on their own. The reference for the compiled kernel (pipeline/dedup/shingles.py)."""
    return _SHINGLE_TOKEN.findall(text)


@cache
def _keyword_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(terms, units), compiled on first use: the dedup stage and vector searches never do."""
    ranges = mark_ranges()
    marks = _class(tuple(r for r in ranges if not is_no_space(chr(r[0]))))
    word = f"[^\\W{_NS}](?:[^\\W{_NS}]|[{marks}])*"
    terms = re.compile(f"(?P<run>[{_NS}]+)|(?P<word>{word})")
    # A unit of a run: a character with the vowel and tone marks written on it (Thai, Lao,
    # Khmer, Myanmar), so a bigram is two letters, not a letter and its tone mark.
    units = re.compile(f".[{_class(tuple(r for r in ranges if is_no_space(chr(r[0]))))}]*")
    return terms, units


def fold(text: str) -> str:
    """NFKC (skipped for ASCII, where it changes nothing) and case folding."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return text.casefold()


def keyword_terms(text: str) -> list[str]:
    """The BM25 terms of a document or a query, in text order with repeats."""
    text = fold(text)
    if text.isascii() or _plain(text):  # most text: one findall, as fast as the old split
        return _PLAIN_WORD.findall(text)
    return _terms_any_script(text)


def _plain(text: str) -> bool:
    """Whether no character of `text` is of a no-space script or a combining mark: then its
    terms are plain \\w runs (the full rule's regex is 3-4x slower)."""
    starts, ends = _special_ranges()
    for char in set(text):
        point = ord(char)
        k = bisect_right(starts, point) - 1
        if point >= 0x300 and k >= 0 and point <= ends[k]:
            return False
    return True


@cache
def _special_ranges() -> tuple[list[int], list[int]]:
    """Sorted starts and ends of the no-space-script and combining-mark ranges."""
    ranges = sorted((*NO_SPACE_RANGES, *mark_ranges()))
    return [lo for lo, _ in ranges], [hi for _, hi in ranges]


def _terms_any_script(text: str) -> list[str]:
    """`keyword_terms` of folded text in any script (equal to the ASCII path on ASCII)."""
    pattern, unit = _keyword_patterns()
    terms: list[str] = []
    for match in pattern.finditer(text):
        piece = match.group()
        if match.lastgroup == "word":
            if len(piece) <= MAX_WORD:
                terms.append(piece)
            continue
        units = unit.findall(piece) if len(piece) > 1 else [piece]
        if len(units) == 1:
            terms.append(piece)
        else:
            terms.extend(units[i] + units[i + 1] for i in range(len(units) - 1))
    return terms
