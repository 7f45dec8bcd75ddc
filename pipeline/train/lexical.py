"""Hashed n-gram counts: the lexical half of the `hybrid` model's input (no fitted state).

Word (and optionally character) n-grams are hashed into a fixed number of columns, so the
featuriser has no vocabulary to fit, store or ship: the same settings give the same columns
at training, evaluation and serving time. Counts are sublinear (log(1 + tf)); the inverse
document frequencies are learnt from the train split and kept inside the network as a
buffer (`pipeline/train/models/hybrid.py`), so the ONNX graph applies them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LexicalSettings:
    """Which n-grams are hashed, into how many columns each."""

    n_features: int = 1 << 18  # columns per analyser; collisions are rare below ~100k n-grams
    word_ngrams: tuple[int, int] = (1, 2)  # bigrams catch template phrases ("which of the")
    char_ngrams: tuple[int, int] | None = None  # e.g. (3, 5): spelling, code, morphology

    @property
    def width(self) -> int:
        """Columns of the hashed matrix: one block per analyser."""
        return self.n_features * (2 if self.char_ngrams else 1)


def hashed_counts(texts: Sequence[str], settings: LexicalSettings) -> Any:
    """A CSR float32 matrix (len(texts), settings.width) of log(1 + n-gram count)."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import HashingVectorizer

    def vectorizer(analyzer: str, ngrams: tuple[int, int]) -> HashingVectorizer:
        # alternate_sign=False: the counts stay non-negative, as TF-IDF's are.
        return HashingVectorizer(
            analyzer=analyzer,
            ngram_range=tuple(ngrams),
            n_features=settings.n_features,
            alternate_sign=False,
            norm=None,
            dtype=np.float32,
        )

    blocks = [vectorizer("word", settings.word_ngrams).transform(texts)]
    if settings.char_ngrams:
        blocks.append(vectorizer("char_wb", settings.char_ngrams).transform(texts))
    matrix = sp.hstack(blocks, format="csr", dtype=np.float32) if len(blocks) > 1 else blocks[0]
    matrix.data = np.log1p(matrix.data)
    return matrix.tocsr()
