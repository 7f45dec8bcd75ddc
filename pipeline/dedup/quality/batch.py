"""A batch of texts' word counts and n-gram ceilings in one compiled pass over their bytes.

The quality step measures every record; most pass every filter, and for the n-gram filters
a cheap ceiling proves it (filters.py). Tokenising each text in Python (a regex) and
hashing its n-grams with a dozen NumPy calls per text cost more than every other filter
together, so here one numba loop over the batch's UTF-8 bytes finds the same words as
`pipeline.text.tokens.shingle_tokens` (the near-dup step's kernel rules, reused from
pipeline/dedup/shingles.py), their lengths in characters, and the two ceilings of
measures.py (`top_ngram_bound`, `dup_ngram_bound`). Only the rare text whose ceiling
passes a maximum has its words made in Python for the exact measure.

Hashes differ from measures.py's (FNV-1a, not Python's str hash), which is safe: a
collision can only merge n-grams, which raises a ceiling, never lowers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba as nb
import numpy as np

from pipeline.dedup.quality.measures import Words, words
from pipeline.dedup.shingles import _NS_HI, _NS_LO, _space_len, _unit_len, mix64

_FNV_BASIS = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_PRIME = np.uint64(1099511628211)  # the n-gram polynomial, as measures.py's
TOP_N = 4  # top_ngram's largest n (2, 3, 4): its ceiling's widest window
DUP_N = 5  # dup_ngram's smallest n (5..10): its ceiling's n


@dataclass(eq=False)
class Prepared:
    """One text's word count and n-gram ceilings; its words (measures.Words) on demand."""

    text: str
    count: int
    top_ceiling: float
    dup_ceiling: float
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
    counts, tops, dups = _measure(buf, offsets, _NS_LO, _NS_HI)
    values = zip(present, counts.tolist(), tops.tolist(), dups.tolist(), strict=True)
    found = iter([Prepared(*value) for value in values])
    return [None if t is None else next(found) for t in texts]


@nb.njit(cache=True)
def _measure(
    buf: np.ndarray, offsets: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_docs = len(offsets) - 1
    counts = np.zeros(n_docs, np.int64)
    tops = np.zeros(n_docs)
    dups = np.zeros(n_docs)
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
    return counts, tops, dups


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
