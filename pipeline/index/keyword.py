"""BM25 keyword index as a sparse term matrix (scipy), stored beside the FAISS index.

Why not tantivy or DuckDB fts: DuckDB's fts extension cannot be installed offline, and a
sparse matrix gives what search needs directly: pre-filtering is a mask over document
rows (the same allowed rows the vector search uses), erasure drops rows and recomputes
the statistics exactly, building is one CountVectorizer pass, and a query sums a handful
of column slices (milliseconds for 55k records). Rows follow the index's rid order.
Raw term frequencies are stored; BM25 weights are computed at load with k1 and b from
conf/search, so tuning them needs no rebuild. Terms are `pipeline.text.tokens.keyword_terms`
(words, and character bigrams of scripts written without spaces) for documents and queries
alike; `TOKENIZER` names that rule, stored with the terms: an index built with another
rule is refused for queries (its terms would not match the query's), not misread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.text.tokens import keyword_terms

# The term rule of this code. Indexes written before it had no TOKENIZER_FILE; their rule
# (runs of \w, so a Chinese sentence was one term) is called OLD_TOKENIZER.
TOKENIZER = "words+no-space-bigrams-v2"
OLD_TOKENIZER = "w-runs-v1"
TOKENIZER_FILE = "tokenizer.txt"

_FILES = ("tf_data.npy", "tf_indices.npy", "tf_indptr.npy", "doclen.npy", "rids.npy")


@dataclass
class TermMatrix:
    """Term frequencies in CSC layout (column = term), one row per document."""

    data: np.ndarray  # int32 term frequencies
    indices: np.ndarray  # int32 document row of each entry
    indptr: np.ndarray  # int64 column boundaries
    doclen: np.ndarray  # float32 tokens per document
    rids: np.ndarray  # int64 rid of each row
    vocab: list[str]  # sorted terms; column j is vocab[j]
    tokenizer: str = TOKENIZER  # the term rule the texts were counted with

    @property
    def n_docs(self) -> int:
        return len(self.rids)


def build_terms(texts: list[str], rids: np.ndarray) -> TermMatrix:
    """Count terms of each text (rows in `rids` order)."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(analyzer=keyword_terms, dtype=np.int32)
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # no text has a word: an index that matches nothing
        return TermMatrix(
            np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(1, np.int64),
            np.zeros(len(texts), np.float32), np.asarray(rids, np.int64), [],
        )  # fmt: skip
    csc = counts.tocsc()
    csc.sort_indices()
    return TermMatrix(
        data=csc.data.astype(np.int32),
        indices=csc.indices.astype(np.int32),
        indptr=csc.indptr.astype(np.int64),
        doclen=np.asarray(counts.sum(axis=1), dtype=np.float32).ravel(),
        rids=np.asarray(rids, dtype=np.int64),
        vocab=list(vectorizer.get_feature_names_out()),
    )


def save_terms(terms: TermMatrix, directory: Path) -> None:
    """Write the term matrix into `directory` (inside a not-yet-published index dir)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in zip(
        _FILES, (terms.data, terms.indices, terms.indptr, terms.doclen, terms.rids), strict=True
    ):
        np.save(directory / name, array)
    # Plain text, one term per line: loads in milliseconds, unlike a fixed-width string array.
    (directory / "vocab.txt").write_text("\n".join(terms.vocab), encoding="utf-8")
    (directory / TOKENIZER_FILE).write_text(terms.tokenizer + "\n", encoding="utf-8")


def load_terms(directory: Path) -> TermMatrix:
    """Read a term matrix written by `save_terms`."""
    try:
        arrays = [np.load(directory / name) for name in _FILES]
        text = (directory / "vocab.txt").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PipelineError(f"{directory}: keyword index incomplete ({exc.filename})") from exc
    rule = directory / TOKENIZER_FILE
    tokenizer = rule.read_text(encoding="utf-8").strip() if rule.exists() else OLD_TOKENIZER
    return TermMatrix(*arrays, vocab=text.split("\n") if text else [], tokenizer=tokenizer)


def stale_tokenizer(terms: TermMatrix, directory: Path) -> str | None:
    """Why queries cannot use these terms (built with another term rule), or None."""
    if terms.tokenizer == TOKENIZER:
        return None
    return (
        f"{directory}: keyword index built with term rule {terms.tokenizer!r}, this version "
        f"uses {TOKENIZER!r} (words, and character bigrams for Chinese, Japanese, Thai, ...); "
        "rebuild it with `pipeline index build` (or `dvc repro`)"
    )


def drop_rows(terms: TermMatrix, keep: np.ndarray) -> TermMatrix:
    """The term matrix without the rows where `keep` is False (erasure).

    Terms no remaining row holds leave the vocabulary too: a word only an erased user wrote
    must not survive in vocab.txt. The result equals `build_terms` over the remaining texts
    (same sorted vocabulary, same counts), without needing the texts.
    """
    from scipy.sparse import csc_matrix

    matrix = csc_matrix(
        (terms.data, terms.indices, terms.indptr), shape=(terms.n_docs, len(terms.vocab))
    )
    kept = matrix[np.flatnonzero(keep)].tocsc()
    used = np.flatnonzero(np.diff(kept.indptr) > 0)
    kept = kept[:, used].tocsc()
    kept.sort_indices()
    return TermMatrix(
        data=kept.data.astype(np.int32),
        indices=kept.indices.astype(np.int32),
        indptr=kept.indptr.astype(np.int64),
        doclen=terms.doclen[keep],
        rids=terms.rids[keep],
        vocab=[terms.vocab[j] for j in used],
        tokenizer=terms.tokenizer,  # an erasure changes rows, not the rule they were counted by
    )


class BM25:
    """Okapi BM25 scores over a TermMatrix (Lucene's non-negative idf)."""

    def __init__(self, terms: TermMatrix, k1: float = 1.2, b: float = 0.75) -> None:
        self.n_docs = terms.n_docs
        self.rids = terms.rids
        self.term_ids = {term: j for j, term in enumerate(terms.vocab)}
        self.indptr = terms.indptr
        self.indices = terms.indices
        df = np.diff(terms.indptr).astype(np.float64)
        idf = np.log1p((self.n_docs - df + 0.5) / (df + 0.5))
        avgdl = float(terms.doclen.mean()) if self.n_docs and terms.doclen.sum() else 1.0
        rows = terms.indices
        tf = terms.data.astype(np.float32)
        norm = k1 * (1.0 - b + b * terms.doclen[rows] / avgdl)
        self.weights = (np.repeat(idf, np.diff(terms.indptr)) * tf * (k1 + 1) / (tf + norm)).astype(
            np.float32
        )

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document row for `query` (0 where no term matches)."""
        out = np.zeros(self.n_docs, dtype=np.float32)
        for term in set(keyword_terms(query)):
            j = self.term_ids.get(term)
            if j is None:
                continue
            lo, hi = self.indptr[j], self.indptr[j + 1]
            out[self.indices[lo:hi]] += self.weights[lo:hi]  # rows are unique within a column
        return out

    def top(
        self, query: str, n: int, rows: np.ndarray | None = None, scores: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best `n` document rows (among `rows` when given) with a positive score.

        `scores`: `self.scores(query)` when the caller has computed it already.
        """
        if scores is None:
            scores = self.scores(query)
        candidates = np.flatnonzero(scores > 0) if rows is None else rows[scores[rows] > 0]
        return top_rows(scores, candidates, n)


def top_rows(scores: np.ndarray, candidates: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n best candidate rows by score (ties by row, so results are deterministic)."""
    if len(candidates) > n:
        part = np.argpartition(-scores[candidates], n - 1)[:n]
        # Include every candidate tied with the n-th score so tie-breaking is by row, not luck.
        cutoff = scores[candidates[part]].min()
        candidates = candidates[scores[candidates] >= cutoff]
    order = np.lexsort((candidates, -scores[candidates]))[:n]
    chosen = candidates[order]
    return chosen, scores[chosen]
