"""A batch of texts' word counts and n-gram ceilings in one compiled pass over their bytes.

The quality step measures every record; most pass every filter, and for the n-gram filters
a cheap ceiling proves it (filters.py). Tokenising each text in Python (a regex) and
hashing its n-grams with a dozen NumPy calls per text cost more than every other filter
together, so here one numba loop over the batch's UTF-8 bytes finds the same words as
`pipeline.text.tokens.shingle_tokens` (the near-dup step's kernel rules, reused from
pipeline/dedup/shingles.py), their lengths in characters, and the two ceilings of
measures.py (`top_ngram_bound`, `dup_ngram_bound`). Only the rare text whose ceiling
passes a maximum has its words made in Python for the exact measure. For an ASCII text
(most of t0-prompts) the same pass also gives `mean_word_length` and `non_alpha_fraction`,
from measures.py's own ASCII tables; other texts keep the Python measures.

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


@dataclass(eq=False)
class Prepared:
    """One text's word count and n-gram ceilings; its words (measures.Words) on demand."""

    text: str
    count: int
    top_ceiling: float
    dup_ceiling: float
    ascii: bool  # the next two were measured (an ASCII text), else they are None
    mean_word_length: float | None
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


def prepare(texts: Sequence[str | None]) -> list[Prepared | None]:
    """Each text's `Prepared` (None for a missing text), computed in one compiled pass."""
    present = [t for t in texts if t is not None]
    encoded = [t.encode("utf-8", "surrogatepass") for t in present]
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    counts, tops, dups, ascii_, mean_len, alpha = _measure(
        buf, offsets, _NS_LO, _NS_HI, np.stack([_SPACE, _PUNCT, _WORD_OR_SPACE])
    )
    ascii_ = ascii_.tolist()
    # NaN: not measured (not ASCII) or, for an ASCII text, no word: measures.py's None.
    lengths = [None if v != v else v for v in mean_len.tolist()]
    alphas = [v if a else None for a, v in zip(ascii_, alpha.tolist(), strict=True)]
    columns = (counts.tolist(), tops.tolist(), dups.tolist(), ascii_, lengths, alphas)
    found = iter([Prepared(t, *value) for t, *value in zip(present, *columns, strict=True)])
    return [None if t is None else next(found) for t in texts]


@nb.njit(cache=True)
def _measure(
    buf: np.ndarray, offsets: np.ndarray, lo: np.ndarray, hi: np.ndarray, tables: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_docs = len(offsets) - 1
    counts = np.zeros(n_docs, np.int64)
    tops = np.zeros(n_docs)
    dups = np.zeros(n_docs)
    ascii_ = np.zeros(n_docs, np.bool_)
    mean_len = np.full(n_docs, np.nan)  # NaN for an ASCII text: no word (None in measures.py)
    alpha = np.full(n_docs, np.nan)
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
        ascii_[d] = _ascii_measures(buf[offsets[d] : offsets[d + 1]], tables, mean_len, alpha, d)
    return counts, tops, dups, ascii_, mean_len, alpha


@nb.njit(cache=True)
def _ascii_measures(
    text: np.ndarray, tables: np.ndarray, lengths_out: np.ndarray, alpha_out: np.ndarray, d: int
) -> bool:
    """measures.mean_word_length and non_alpha_fraction of an ASCII text into row d; whether
    the text is ASCII (else nothing is written). tables: space, punctuation, word or space."""
    chars = spaced = visible = other = 0
    in_word = False
    for b in text:
        if b >= 128:
            return False
        if tables[0, b]:
            in_word = False
            continue
        visible += 1
        other += not tables[2, b]
        if not tables[1, b]:  # punctuation is deleted: it neither counts nor starts a word
            chars += 1
            if not in_word:
                spaced += 1
                in_word = True
    if spaced:
        lengths_out[d] = chars / spaced
    alpha_out[d] = other / visible if visible else 0.0
    return True


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
    out = hashes[: len(hashes) - n + 1].copy()
    for j in range(1, n):
        out = out * _PRIME + hashes[j : j + len(out)]
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
