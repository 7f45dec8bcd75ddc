"""Exact text keys and 5-word-shingle Jaccard, used to keep the sample's ground truth exact:
no accidental duplicates among base records, measured similarity for planted ones."""

from __future__ import annotations

import unicodedata
from collections import defaultdict

NGRAM = 5


def words(text: str) -> list[str]:
    """Words of `text` after NFKC, lower case and whitespace splitting (what dedup normalises)."""
    return unicodedata.normalize("NFKC", text).lower().split()


def shingles(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """Word n-grams; a text shorter than n words is one shingle."""
    w = words(text)
    if len(w) < n:
        return {tuple(w)}
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """Jaccard similarity of two sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def joined(prompt: str, response: str | None) -> str:
    """The text the dedup stage compares by default: prompt then response."""
    return prompt if not response else f"{prompt} {response}"


class SimilarityIndex:
    """Inverted index over shingles: answers "is anything already here too similar?"."""

    def __init__(self, max_jaccard: float) -> None:
        self.max_jaccard = max_jaccard
        self.keys: set[str] = set()
        self.postings: dict[tuple[str, ...], list[int]] = defaultdict(list)
        self.sizes: list[int] = []

    def too_close(self, texts: list[str]) -> bool:
        """True if any of `texts` (each checked separately) is an exact or near match."""
        return any(self._too_close(t) for t in texts)

    def _too_close(self, text: str) -> bool:
        if " ".join(words(text)) in self.keys:
            return True
        sh = shingles(text)
        shared: dict[int, int] = defaultdict(int)
        for s in sh:
            for doc in self.postings.get(s, ()):
                shared[doc] += 1
        return any(
            inter / (len(sh) + self.sizes[doc] - inter) >= self.max_jaccard
            for doc, inter in shared.items()
        )

    def add(self, texts: list[str]) -> None:
        """Index `texts` (each one as its own document)."""
        for text in texts:
            self.keys.add(" ".join(words(text)))
            doc = len(self.sizes)
            sh = shingles(text)
            self.sizes.append(len(sh))
            for s in sh:
                self.postings[s].append(doc)
