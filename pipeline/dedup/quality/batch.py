"""A batch of texts' word counts and n-gram ceilings in one compiled pass over their bytes.

The quality step measures every record; most pass every filter, and for the n-gram filters
a cheap ceiling proves it (filters.py). Tokenising each text in Python (a regex) and
hashing its n-grams with a dozen NumPy calls per text cost more than every other filter
together, so here one numba loop over the batch's UTF-8 bytes finds the same words as
`pipeline.text.tokens.shingle_tokens` (the near-dup step's kernel rules, reused from
pipeline/dedup/shingles.py), their lengths in characters, and the two ceilings of
measures.py (`top_ngram_bound`, `dup_ngram_bound`). Only the rare text whose ceiling
passes a maximum has its words made in Python for the exact measure. For an ASCII text
(most of t0-prompts) the same pass also gives `mean_word_length` and `non_alpha_fraction`
from measures.py's own tables (for another text, `mean_word_length` and a ceiling of
`non_alpha_fraction`: Unicode's letter classes stay in Python). For every text it
also counts `symbol_ratio`'s symbols and tells whether a line may repeat (hashes of the
lines, stripped), so that filters.py's `may_fail` proves most texts pass every filter and
the step measures in Python only the few it cannot clear.

Hashes differ from measures.py's (FNV-1a, not Python's str hash), which is safe: a
collision can only merge n-grams, which raises a ceiling, never lowers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba as nb
import numpy as np

from pipeline.dedup.quality.measures import (
    _ASCII_PUNCTUATION,
    _ASCII_WORD_OR_SPACE,
    _PUNCTUATION,
    Words,
    words,
)
from pipeline.dedup.shingles import _NS_HI, _NS_LO, _space_len, _unit_len, mix64

_FNV_BASIS = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_PRIME = np.uint64(1099511628211)  # the n-gram polynomial, as measures.py's
TOP_N = 4  # top_ngram's largest n (2, 3, 4): its ceiling's widest window
DUP_N = 5  # dup_ngram's smallest n (5..10): its ceiling's n


def _table(members: bytes) -> np.ndarray:
    out = np.zeros(256, np.bool_)
    out[np.frombuffer(members, np.uint8)] = True
    return out


# What measures.py's ASCII fast paths split on or delete, as byte lookup tables (passed to
# the kernel as arguments: numba's cache would keep a stale copy of a global array). Spaces
# are str.split()'s, which measures.py gets from bytes.split() by mapping \x1c-\x1f.
_SPACE = _table(bytes(c for c in range(128) if chr(c).isspace()))
_PUNCT = _table(_ASCII_PUNCTUATION)
_WORD_OR_SPACE = _table(_ASCII_WORD_OR_SPACE)
_WIDE_PUNCTUATION = np.array([ord(c) for c in _PUNCTUATION if ord(c) > 127], np.int64)


@dataclass(frozen=True, eq=False)
class Measured:
    """A batch of texts as the kernel measured them, one row per text (`present` False for a
    missing text, whose other values mean nothing)."""

    texts: Sequence[str | None]
    present: np.ndarray  # bool
    count: np.ndarray  # words
    top_ceiling: np.ndarray
    dup_ceiling: np.ndarray
    ascii: np.ndarray  # bool: non_alpha was measured
    mean_word_length: np.ndarray  # NaN: no word (measures.py's None)
    non_alpha: np.ndarray  # NaN: not measured
    non_alpha_ceiling: np.ndarray  # at least non_alpha_fraction; equal for an ASCII text
    symbols: np.ndarray  # "#", "..." and "…" as measures.symbol_ratio counts them
    line_may_repeat: np.ndarray  # bool: False proves repeated_line_fraction is 0

    def item(self, i: int) -> Prepared | None:
        """Row i as the filters' `Prepared` (None for a missing text)."""
        text = self.texts[i]
        if text is None:
            return None
        ascii_ = bool(self.ascii[i])
        mean, alpha = float(self.mean_word_length[i]), float(self.non_alpha[i])
        return Prepared(
            text,
            int(self.count[i]),
            float(self.top_ceiling[i]),
            float(self.dup_ceiling[i]),
            ascii_,
            None if mean != mean else mean,
            alpha if ascii_ else None,
        )


@dataclass(eq=False)
class Prepared:
    """One text's word count and n-gram ceilings; its words (measures.Words) on demand."""

    text: str
    count: int
    top_ceiling: float
    dup_ceiling: float
    ascii: bool  # non_alpha was measured (an ASCII text), else it is None
    mean_word_length: float | None  # None: no word, as measures.mean_word_length
    non_alpha: float | None
    _words: Words | None = None

    def __len__(self) -> int:
        return self.count

    @property
    def words(self) -> Words:
        """The text's words, made once, for an exact n-gram measure."""
        if self._words is None:
            self._words = words(self.text)
        return self._words


def measure(texts: Sequence[str | None]) -> Measured:
    """The kernel's measures of every text (a missing one is measured as empty)."""
    encoded = [b"" if t is None else t.encode("utf-8", "surrogatepass") for t in texts]
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    present = np.array([t is not None for t in texts], np.bool_)
    tables = np.stack([_SPACE, _PUNCT, _WORD_OR_SPACE])
    return Measured(
        texts, present, *_measure(buf, offsets, _NS_LO, _NS_HI, tables, _WIDE_PUNCTUATION)
    )


def prepare(texts: Sequence[str | None]) -> list[Prepared | None]:
    """Each text's `Prepared` (None for a missing text), computed in one compiled pass."""
    measured = measure(texts)
    return [measured.item(i) for i in range(len(texts))]


@nb.njit(cache=True)
def _measure(
    buf: np.ndarray,
    offsets: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    tables: np.ndarray,
    punct: np.ndarray,
) -> tuple[np.ndarray, ...]:
    n_docs = len(offsets) - 1
    counts = np.zeros(n_docs, np.int64)
    tops = np.zeros(n_docs)
    dups = np.zeros(n_docs)
    ascii_ = np.zeros(n_docs, np.bool_)
    # mean_word_length (NaN: no word), non_alpha (NaN: not ASCII), non_alpha's ceiling
    per_char = np.full((3, n_docs), np.nan)
    symbols = np.zeros(n_docs, np.int64)
    lines_repeat = np.zeros(n_docs, np.bool_)
    widest = 1
    for d in range(n_docs):
        widest = max(widest, offsets[d + 1] - offsets[d] + 1)
    hashes = np.empty(widest, np.uint64)  # a text has at most one word per byte
    lengths = np.empty(widest, np.int64)
    for d in range(n_docs):
        k, chars = _tokens(buf, offsets[d], offsets[d + 1], lo, hi, hashes, lengths)
        counts[d] = k
        if chars > 0:
            tops[d] = _top_bound(hashes[:k], lengths[:k], chars)
            dups[d] = _dup_bound(hashes[:k], lengths[:k], chars)
        ascii_[d] = _char_measures(
            buf, offsets[d], offsets[d + 1], tables, punct, lo, hi, per_char, d
        )
        symbols[d] = _symbols(buf, offsets[d], offsets[d + 1])
        lines_repeat[d] = _line_may_repeat(buf, offsets[d], offsets[d + 1], hashes)
    return counts, tops, dups, ascii_, per_char[0], per_char[1], per_char[2], symbols, lines_repeat


@nb.njit(cache=True)
def _symbols(buf: np.ndarray, start: int, end: int) -> int:
    """text.count("#") + text.count("...") + text.count("…") over the text's UTF-8 bytes (a
    run of k dots holds k // 3 non-overlapping "..."; "…" is E2 80 A6)."""
    found = dots = 0
    for i in range(start, end):
        b = buf[i]
        if b == 46:
            dots += 1
            continue
        found += dots // 3
        dots = 0
        ellipsis = b == 0xE2 and i + 2 < end and buf[i + 1] == 0x80 and buf[i + 2] == 0xA6
        if b == 35 or ellipsis:
            found += 1
    return found + dots // 3


@nb.njit(inline="always")
def _space_at(buf: np.ndarray, i: int, end: int) -> int:
    """_space_len, with ASCII bytes decided here (the helper is slow on them)."""
    b = buf[i]
    if b < 128:
        return 1 if b == 32 or (9 <= b <= 13) or (28 <= b <= 31) else 0
    return _space_len(buf, i, end)


@nb.njit(cache=True)
def _line_may_repeat(buf: np.ndarray, start: int, end: int, scratch: np.ndarray) -> bool:
    """Whether two non-blank lines of the text have the same hash, each line stripped of
    str.strip()'s whitespace. measures.repeated_line_fraction compares the lines of the
    stripped text: two equal ones strip to equal bytes, so False proves it is 0 (a hash
    collision only gives a needless True)."""
    n = 0
    line = start
    for i in range(start, end + 1):
        if i < end and buf[i] != 10:
            continue
        s = line
        while s < i:  # leading whitespace
            step = _space_at(buf, s, i)
            if step == 0:
                break
            s += step
        last = j = s
        while j < i:  # the end of the last non-space character
            step = _space_at(buf, j, i)
            if step:
                j += step
            else:
                j += 1  # a byte of a non-space character (continuation bytes are no space)
                last = j
        if last > s:
            h = _FNV_BASIS
            for k in range(s, last):
                h = (h ^ np.uint64(buf[k])) * _FNV_PRIME
            scratch[n] = h
            n += 1
        line = i + 1
    if n < 2:
        return False
    seen = np.sort(scratch[:n])
    return bool(np.any(seen[1:] == seen[:-1]))


@nb.njit(cache=True)
def _char_measures(
    buf: np.ndarray,
    start: int,
    end: int,
    tables: np.ndarray,
    punct: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    out: np.ndarray,
    d: int,
) -> bool:
    """Row d of out: measures.mean_word_length (NaN for its None), non_alpha_fraction for an
    ASCII text, and a ceiling of it for any text (every non-ASCII character counted as
    neither letter nor digit: Unicode's classes stay in Python). Whether the text is ASCII.
    tables: ASCII space, punctuation, word or space; punct: the other punctuation's code
    points. As in measures.py, punctuation is deleted (it neither counts nor ends a word)
    and a no-space-script character ends a word."""
    chars = spaced = visible = other = 0
    in_word, ascii_ = False, True
    i = start
    while i < end:
        b = buf[i]
        if b < 128:
            i += 1
            if tables[0, b]:
                in_word = False
                continue
            visible += 1
            other += not tables[2, b]
            if tables[1, b]:
                continue
        else:
            ascii_ = False
            step = _space_len(buf, i, end)
            if step:
                in_word = False
                i += step
                continue
            size = min(2 if b < 0xE0 else 3 if b < 0xF0 else 4, end - i)
            point = np.int64(b) & (0x1F if size == 2 else 0x0F if size == 3 else 0x07)
            for j in range(i + 1, i + size):
                point = (point << 6) | (np.int64(buf[j]) & 0x3F)
            unit = _unit_len(buf, i, end, lo, hi)
            i += size
            visible += 1
            other += 1
            if np.any(punct == point):
                continue
            if unit:
                in_word = False
                continue
        chars += 1
        if not in_word:
            spaced += 1
            in_word = True
    if spaced:
        out[0, d] = chars / spaced
    ceiling = other / visible if visible else 0.0
    out[2, d] = ceiling
    if ascii_:
        out[1, d] = ceiling
    return ascii_


@nb.njit(cache=True)
def _tokens(
    buf: np.ndarray,
    start: int,
    end: int,
    lo: np.ndarray,
    hi: np.ndarray,
    hashes: np.ndarray,
    lengths: np.ndarray,
) -> tuple[int, int]:
    """Hash and character length of every word of buf[start:end]; (words, characters)."""
    k = chars = size = 0
    h = _FNV_BASIS
    in_token = False
    i = start
    while i < end:
        b = buf[i]
        if b < 128:  # ASCII (most bytes): the kernel's helpers would give the same, slower
            step = 1 if b == 32 or (9 <= b <= 13) or (28 <= b <= 31) else 0
            unit = 0  # the no-space scripts lie at U+0800 and above
        else:
            step = _space_len(buf, i, end)
            unit = 0 if step else _unit_len(buf, i, end, lo, hi)
        if step or unit:
            if in_token:
                hashes[k], lengths[k] = mix64(h), size
                k += 1
                in_token = False
            if step:
                chars += 1
                i += step
        if unit:  # a no-space-script character: a word of its own
            h = _FNV_BASIS
            for j in range(i, i + unit):
                h = (h ^ np.uint64(buf[j])) * _FNV_PRIME
            hashes[k], lengths[k] = mix64(h), 1
            k += 1
            chars += 1
            i += unit
        elif not step:
            if not in_token:
                h, size, in_token = _FNV_BASIS, 0, True
            h = (h ^ np.uint64(buf[i])) * _FNV_PRIME
            if (buf[i] & 0xC0) != 0x80:  # not a UTF-8 continuation byte: a new character
                size += 1
                chars += 1
            i += 1
    if in_token:
        hashes[k], lengths[k] = mix64(h), size
        k += 1
    return k, chars


@nb.njit(cache=True)
def _grams(hashes: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(len(hashes) - n + 1, np.uint64)
    for i in range(len(out)):  # one loop: no temporary array per word of the n-gram
        h = hashes[i]
        for j in range(1, n):
            h = h * _PRIME + hashes[i + j]
        out[i] = h
    return out


@nb.njit(cache=True)
def _top_bound(hashes: np.ndarray, lengths: np.ndarray, chars: int) -> float:
    """measures.top_ngram_bound(tokens, TOP_N, chars)."""
    k = len(hashes)
    if k < 3:
        return 0.0
    grams = np.sort(_grams(hashes, 2))
    top = run = 1
    for j in range(1, len(grams)):
        run = run + 1 if grams[j] == grams[j - 1] else 1
        top = max(top, run)
    if top < 2:
        return 0.0
    span = min(TOP_N, k)
    window = lengths[:span].sum()
    wide = window
    for j in range(span, k):
        window += lengths[j] - lengths[j - span]
        wide = max(wide, window)
    return top * (wide + span - 1) / chars


@nb.njit(cache=True)
def _dup_bound(hashes: np.ndarray, lengths: np.ndarray, chars: int) -> float:
    """measures.dup_ngram_bound(tokens, DUP_N, chars)."""
    k = len(hashes)
    if k < 2 * DUP_N:
        return 0.0
    grams = _grams(hashes, DUP_N)
    ranked = np.sort(grams)
    if not np.any(ranked[1:] == ranked[:-1]):  # no 5-gram repeats (most texts)
        return 0.0
    order = np.argsort(grams, kind="mergesort")  # stable: a run's first is its first seen
    depth = np.zeros(k + 1, np.int64)
    repeated = False
    for j in range(1, len(order)):
        if grams[order[j]] == grams[order[j - 1]]:  # seen before: covers DUP_N words
            depth[order[j]] += 1
            depth[order[j] + DUP_N] -= 1
            repeated = True
    if not repeated:
        return 0.0
    covered = 0
    level = 0
    for j in range(k):
        level += depth[j]
        if level > 0:
            covered += lengths[j]
    return covered / chars
