"""Hashed n-gram counts without scikit-learn: the lexical input of the hybrid at predict time.

The train stage hashes with scikit-learn's HashingVectorizer (pipeline/train/lexical.py);
importing scikit-learn costs ~2 s, a cold `pipeline predict` must start in less. This is
the same function, n-grams and murmurhash3 included (`mmh3` is the same C hash), pinned to
scikit-learn's output by tests/test_predict_hashing.py. Rows come out dense: the ONNX graph
takes a dense (batch, width) tensor anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import mmh3
import numpy as np

# scikit-learn's defaults: token_pattern, and the run of whitespace char_wb collapses.
_WORD = re.compile(r"(?u)\b\w\w+\b")
_SPACES = re.compile(r"\s\s+")
_INT32_MIN = -(2**31)


def word_ngrams(text: str, ngrams: tuple[int, int]) -> list[str]:
    """The word n-grams of `text`, lower-cased, as HashingVectorizer(analyzer='word')."""
    tokens = _WORD.findall(text.lower())
    low, high = ngrams
    if high == 1:
        return tokens
    out = list(tokens) if low == 1 else []
    for n in range(max(low, 2), min(high + 1, len(tokens) + 1)):
        out.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return out


def char_wb_ngrams(text: str, ngrams: tuple[int, int]) -> list[str]:
    """Character n-grams inside padded words, as HashingVectorizer(analyzer='char_wb')."""
    low, high = ngrams
    out: list[str] = []
    for word in _SPACES.sub(" ", text.lower()).split():
        padded = f" {word} "
        length = len(padded)
        for n in range(low, high + 1):
            offset = 0
            out.append(padded[offset : offset + n])
            while offset + n < length:
                offset += 1
                out.append(padded[offset : offset + n])
            if offset == 0:  # a word shorter than n counts once
                break
    return out


def column(feature: str, n_features: int) -> int:
    """The column scikit-learn's FeatureHasher gives `feature` (signed murmurhash3, seed 0)."""
    h = mmh3.hash(feature, 0, signed=True)
    if h == _INT32_MIN:  # abs(-2**31) overflows an int32 in scikit-learn: its defined result
        return (2147483647 - (n_features - 1)) % n_features
    return abs(h) % n_features


def _add(row: np.ndarray, features: Iterable[str], n_features: int, offset: int) -> None:
    for feature in features:
        row[offset + column(feature, n_features)] += 1.0


def hashed_rows(
    texts: Sequence[str],
    n_features: int,
    word: tuple[int, int],
    char_wb: tuple[int, int] | None = None,
) -> np.ndarray:
    """Dense float32 (len(texts), width) of log(1 + n-gram count): word block, then char_wb."""
    width = n_features * (2 if char_wb else 1)
    out = np.zeros((len(texts), width), dtype=np.float32)
    for i, text in enumerate(texts):
        _add(out[i], word_ngrams(text, word), n_features, 0)
        if char_wb:
            _add(out[i], char_wb_ngrams(text, char_wb), n_features, n_features)
    np.log1p(out, out=out)
    return out
