"""Shingle sets as sorted, unique 64-bit hashes, built in compiled loops over a batch of texts.

A batch is stored as CSR: one flat uint64 array of shingle hashes plus int64 offsets, so a
million documents cost two NumPy arrays rather than a million Python sets. Word tokens are
`pipeline.text.tokens.shingle_tokens` found in the UTF-8 bytes (what str.split() returns,
with each character of a script written without spaces, such as Chinese or Thai, a token of
its own); char tokens are code points. A text with fewer tokens than `ngram` becomes one
shingle: the hash of its whole token sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba as nb
import numpy as np

from pipeline.text.tokens import NO_SPACE_RANGES

# splitmix64 finaliser constants: a cheap bijective mixer with full avalanche.
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_FNV_BASIS = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
# Distinct starting points keep n-gram shingles and whole-text shingles in separate domains.
_NGRAM_DOMAIN = np.uint64(0x6E6772616D000001)
_WHOLE_DOMAIN = np.uint64(0x77686F6C65000002)
# Passed to the kernels as arguments, not read as globals: numba's cache would keep a stale
# copy of a global array after the ranges changed.
_NS_LO = np.array([lo for lo, _ in NO_SPACE_RANGES], np.int64)
_NS_HI = np.array([hi for _, hi in NO_SPACE_RANGES], np.int64)


@nb.njit(inline="always")
def mix64(x: np.uint64) -> np.uint64:
    """splitmix64 finaliser."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@nb.njit(inline="always")
def sort_unique_run(values: np.ndarray, start: int, length: int) -> int:
    """Sort values[start : start + length] in place, unique values first; their count."""
    values[start : start + length].sort()
    u = 1 if length > 0 else 0
    for i in range(1, length):
        if values[start + i] != values[start + u - 1]:
            values[start + u] = values[start + i]
            u += 1
    return u


@nb.njit(inline="always")
def _space_len(buf: np.ndarray, i: int, end: int) -> int:
    """Byte length of the whitespace character at buf[i] (0 if none), as str.split() sees it."""
    b = buf[i]
    if b == 32 or (9 <= b <= 13) or (28 <= b <= 31):
        return 1
    if b < 0xC2:
        return 0
    b1 = buf[i + 1] if i + 1 < end else 0
    if b == 0xC2:  # U+0085, U+00A0
        return 2 if b1 == 0x85 or b1 == 0xA0 else 0
    if i + 2 >= end or b < 0xE1 or b > 0xE3:
        return 0
    b2 = buf[i + 2]
    if b == 0xE1:  # U+1680
        return 3 if b1 == 0x9A and b2 == 0x80 else 0
    if b == 0xE3:  # U+3000
        return 3 if b1 == 0x80 and b2 == 0x80 else 0
    if b1 == 0x80:  # U+2000..U+200A, U+2028, U+2029, U+202F
        return 3 if b2 <= 0x8A or b2 == 0xA8 or b2 == 0xA9 or b2 == 0xAF else 0
    return 3 if b1 == 0x81 and b2 == 0x9F else 0  # U+205F


@nb.njit(inline="always")
def _unit_len(buf: np.ndarray, i: int, end: int, lo: np.ndarray, hi: np.ndarray) -> int:
    """Byte length of the character at buf[i] if its script is written without spaces (it is
    a token of its own), else 0. Those scripts all lie at U+0800 and above: 3 or 4 bytes."""
    b = np.int64(buf[i])
    if b < 0xE0:
        return 0
    if b < 0xF0:
        if i + 2 >= end:
            return 0
        point = ((b & 0x0F) << 12) | ((np.int64(buf[i + 1]) & 0x3F) << 6)
        point |= np.int64(buf[i + 2]) & 0x3F
        size = 3
    else:
        if i + 3 >= end:
            return 0
        point = ((b & 0x07) << 18) | ((np.int64(buf[i + 1]) & 0x3F) << 12)
        point |= ((np.int64(buf[i + 2]) & 0x3F) << 6) | (np.int64(buf[i + 3]) & 0x3F)
        size = 4
    k = np.searchsorted(lo, point, side="right") - 1
    return size if k >= 0 and point <= hi[k] else 0


@nb.njit(cache=True, parallel=True)
def _word_token_counts(
    buf: np.ndarray, doc_off: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    n_docs = len(doc_off) - 1
    counts = np.zeros(n_docs, np.int64)
    for d in nb.prange(n_docs):
        count = 0
        in_token = False
        i, end = doc_off[d], doc_off[d + 1]
        while i < end:
            step = _space_len(buf, i, end)
            unit = 0 if step else _unit_len(buf, i, end, lo, hi)
            if step:
                in_token = False
                i += step
            elif unit:
                count += 1
                in_token = False
                i += unit
            else:
                if not in_token:
                    count += 1
                    in_token = True
                i += 1
        counts[d] = count
    return counts


@nb.njit(cache=True, parallel=True)
def _word_token_hashes(
    buf: np.ndarray,
    doc_off: np.ndarray,
    tok_off: np.ndarray,
    seed: np.uint64,
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray:
    # FNV-1a over the token's bytes, then a seeded mix so token hashes spread over 64 bits.
    out = np.empty(tok_off[-1], np.uint64)
    for d in nb.prange(len(doc_off) - 1):
        k = tok_off[d]
        h = _FNV_BASIS
        in_token = False
        i, end = doc_off[d], doc_off[d + 1]
        while i < end:
            step = _space_len(buf, i, end)
            unit = 0 if step else _unit_len(buf, i, end, lo, hi)
            if step or unit:
                if in_token:
                    out[k] = mix64(h ^ seed)
                    k += 1
                    in_token = False
                i += step
            if unit:  # a token of its own, hashed as any token of the same bytes would be
                h = _FNV_BASIS
                for j in range(i, i + unit):
                    h = (h ^ np.uint64(buf[j])) * _FNV_PRIME
                out[k] = mix64(h ^ seed)
                k += 1
                i += unit
            elif not step:
                if not in_token:
                    h = _FNV_BASIS
                    in_token = True
                h = (h ^ np.uint64(buf[i])) * _FNV_PRIME
                i += 1
        if in_token:
            out[k] = mix64(h ^ seed)
    return out


@nb.njit(cache=True, parallel=True)
def _ngram_sets(
    tok: np.ndarray, tok_off: np.ndarray, weights: np.ndarray, seed: np.uint64, unique: bool
) -> tuple[np.ndarray, np.ndarray]:
    ngram = len(weights)
    n_docs = len(tok_off) - 1
    raw_off = np.zeros(n_docs + 1, np.int64)
    for d in range(n_docs):
        count = tok_off[d + 1] - tok_off[d]
        raw_off[d + 1] = raw_off[d] + (count - ngram + 1 if count >= ngram else 1)
    raw = np.empty(raw_off[-1], np.uint64)
    sizes = np.empty(n_docs, np.int64)
    for d in nb.prange(n_docs):
        start = tok_off[d]
        count = tok_off[d + 1] - start
        o = raw_off[d]
        m = raw_off[d + 1] - o
        if count >= ngram:
            for i in range(m):
                # Position-weighted sum of random token hashes, mixed once: order-sensitive
                # and a fifth of the cost of chaining one mix per token.
                h = _NGRAM_DOMAIN ^ seed
                for k in range(ngram):
                    h += tok[start + i + k] * weights[k]
                raw[o + i] = mix64(h)
        else:
            h = _WHOLE_DOMAIN ^ seed
            for k in range(count):
                h = mix64(h ^ tok[start + k])
            raw[o] = mix64(h ^ np.uint64(count))
        sizes[d] = m
        if unique:
            sizes[d] = sort_unique_run(raw, o, m)
    if not unique:
        return raw, raw_off
    offsets = np.zeros(n_docs + 1, np.int64)
    for d in range(n_docs):
        offsets[d + 1] = offsets[d] + sizes[d]
    values = np.empty(offsets[-1], np.uint64)
    for d in nb.prange(n_docs):
        values[offsets[d] : offsets[d + 1]] = raw[raw_off[d] : raw_off[d] + sizes[d]]
    return values, offsets


def _lengths_to_offsets(lengths: Sequence[int]) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    return offsets


def _word_tokens(texts: Sequence[str], seed: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    doc_off = _lengths_to_offsets([len(e) for e in encoded])
    tok_off = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(_word_token_counts(buf, doc_off, _NS_LO, _NS_HI), out=tok_off[1:])
    return _word_token_hashes(buf, doc_off, tok_off, seed, _NS_LO, _NS_HI), tok_off


def _char_tokens(texts: Sequence[str], seed: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    joined = "".join(texts).encode("utf-32-le", "surrogatepass")
    points = np.frombuffer(joined, dtype=np.uint32).astype(np.uint64)
    tok = points ^ seed
    # Vectorised splitmix64 finaliser (same as mix64) so code points spread over 64 bits.
    with np.errstate(over="ignore"):
        tok = (tok ^ (tok >> _S30)) * _M1
        tok = (tok ^ (tok >> _S27)) * _M2
        tok ^= tok >> _S31
    return tok, _lengths_to_offsets([len(t) for t in texts])


def shingle_sets(
    texts: Sequence[str], shingle: str, ngram: int, seed: int, unique: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique shingle hashes of each text as CSR: (values uint64, offsets int64).

    `unique=False` skips the per-text sort: the hashes come in text order, with repeats,
    which is all MinHash needs (a minimum ignores order and repeats).
    """
    seed64 = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    if shingle == "word":
        tok, tok_off = _word_tokens(texts, seed64)
    elif shingle == "char":
        tok, tok_off = _char_tokens(texts, seed64)
    else:
        raise ValueError(f"shingle must be 'word' or 'char', not {shingle!r}")
    # Odd multipliers, one per position in an n-gram, derived from the seed.
    weights = np.random.default_rng(seed64).integers(0, 2**64, ngram, dtype=np.uint64)
    return _ngram_sets(tok, tok_off, weights | np.uint64(1), seed64, unique)
