"""Search the kept records: vector, keyword (BM25) or hybrid (fused), with pre-filters.

`Searcher` holds the loaded index snapshot, the query encoder and a read-only DuckDB
connection; it is safe to share between threads. `search(...)` is the one-call
convenience for scripts and `pipeline.search`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import UserInputError
from pipeline.search.filters import Condition, as_conditions
from pipeline.search.hybrid import FUSIONS, NORMALIZATIONS, fuse
from pipeline.search.results import SearchResult, to_results
from pipeline.search.state import IndexChanged, IndexState, signature

MODES: tuple[str, ...] = ("vector", "keyword", "hybrid")
MAX_K = 1000


@dataclass(frozen=True)
class SearchSettings:
    mode: str = "hybrid"
    k: int = 10
    fusion: str = "convex"  # convex | rrf: how hybrid fuses the two rankings
    alpha: float = 0.2  # weight of the vector side (convex, and rrf's ranking weights)
    normalization: str = "zscore"  # minmax | zscore | max: convex's score scaling
    rrf_k: int = 60  # RRF constant; 60 is the value of the original paper
    candidates: int = 200  # hits of each ranking that hybrid fuses
    exact_below: int = 5_000  # filters allowing fewer records are searched exactly
    filtered_ef_max: int = 1024  # cap on the HNSW beam widened for selective filters
    filter_cache: int = 64
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    snippet_chars: int = 160
    threads: int = 1  # FAISS OpenMP threads (process-wide): one query gains nothing from more
    encode_batch: int = 16  # concurrent queries encoded in one forward pass at most (1: off)
    encode_cache: int = 1024  # recent query vectors kept in memory (0: off)
    encode_threads: int = 1  # ONNX Runtime threads of the query encoder (see conf/search)

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise UserInputError(
                f"search.fusion={self.fusion!r} is unknown; expected one of {', '.join(FUSIONS)}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise UserInputError(
                f"search.normalization={self.normalization!r} is unknown; expected one of "
                f"{', '.join(NORMALIZATIONS)}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise UserInputError(f"search.alpha={self.alpha!r}: expected a weight from 0 to 1")

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> SearchSettings:
        known = {k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg}
        return cls(**known)


class Searcher:
    """A loaded index + store, answering searches; reload_if_changed swaps in a rebuild."""

    def __init__(
        self,
        index_dir: Path,
        store_path: Path,
        settings: SearchSettings,
        encode: Callable[[str], np.ndarray] | None,
        expected_encoder: Mapping[str, Any] | None = None,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.store_path = Path(store_path)
        self.settings = settings
        self._encode = encode
        self._expected_encoder = dict(expected_encoder or {})
        self._lock = threading.Lock()
        self._state = self._load_state()
        import faiss  # already loaded by the index state

        faiss.omp_set_num_threads(max(1, settings.threads))
        self._con, self._store_sig = self._open_store()
        self._filters: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()

    @classmethod
    def open(
        cls,
        index_dir: str | Path,
        store_path: str | Path,
        search_settings: SearchSettings,
        embed_settings: Any,
        cache_dir: str | Path | None = None,
    ) -> Searcher:
        """Load the index and open the store read-only; the query encoder loads on first use."""
        from pipeline.search.encoder import query_encoder

        expected = {"model": embed_settings.model, "dim": embed_settings.dim}
        return cls(
            Path(index_dir),
            Path(store_path),
            search_settings,
            query_encoder(
                embed_settings,
                cache_dir,
                batch=search_settings.encode_batch,
                cache=search_settings.encode_cache,
                threads=search_settings.encode_threads,
            ),
            expected,
        )

    # -- loading ---------------------------------------------------------------------------
    def _load_state(self) -> IndexState:
        state = IndexState.load(self.index_dir, self.settings.bm25_k1, self.settings.bm25_b)
        encoder = state.manifest.get("encoder", {})
        for key, want in self._expected_encoder.items():
            if encoder.get(key) != want:
                raise UserInputError(
                    f"{self.index_dir}: index built with encoder {key}={encoder.get(key)!r}, "
                    f"but embed.{key}={want!r}; rebuild with `pipeline index build`"
                )
        return state

    def _open_store(self) -> tuple[Any, tuple[int, int] | None]:
        from pipeline.store.db import open_snapshot

        con = open_snapshot(self.store_path)
        st = self.store_path.stat()
        return con, (st.st_ino, st.st_mtime_ns)

    def reload_if_changed(self) -> bool:
        """Swap in a republished index (or store); searches in flight finish on the old one."""
        with self._lock:
            changed = False
            if signature(self.index_dir) not in (None, self._state.signature):
                self._state = self._load_state()
                changed = True
            try:
                st = self.store_path.stat()
                store_changed = (st.st_ino, st.st_mtime_ns) != self._store_sig
            except FileNotFoundError:
                store_changed = False
            if store_changed:
                # The old connection is not closed here: a search in another thread may be
                # using a cursor of it. It closes when the last reference goes away.
                self._con, self._store_sig = self._open_store()
                changed = True
            if changed:
                self._filters.clear()
            return changed

    @property
    def manifest(self) -> dict[str, Any]:
        return self._state.manifest

    def close(self) -> None:
        """Close the store connection and stop the query encoder's batching thread."""
        self._con.close()
        close_encoder = getattr(self._encode, "close", None)
        if close_encoder is not None:  # a plain function (tests, callers with vectors) has none
            close_encoder()

    # -- searching -------------------------------------------------------------------------
    def search(
        self,
        text: str,
        k: int = 10,
        mode: str = "hybrid",
        filters: Sequence[str | Condition] = (),
        scope: Sequence[Condition] = (),
        with_session: bool = False,
    ) -> list[SearchResult]:
        """The k best records for `text`, among those matching every filter and scope."""
        text = (text or "").strip()
        if not text:
            raise UserInputError("empty query: give the text to search for")
        _check(k, mode)
        conditions = as_conditions(filters) + as_conditions(scope)
        query = None
        if mode != "keyword":
            if self._encode is None:
                raise UserInputError("this searcher has no query encoder; use mode=keyword")
            query = self._encode(text)
        try:
            return self._search_state(self._state, text, query, k, mode, conditions, with_session)
        except IndexChanged:
            # The keyword matrix is loaded lazily; the index was republished since the
            # snapshot loaded (an erasure, a build). Load the new one and answer from it.
            self.reload_if_changed()
            return self._search_state(self._state, text, query, k, mode, conditions, with_session)

    def _search_state(
        self,
        state: IndexState,
        text: str,
        query: np.ndarray | None,
        k: int,
        mode: str,
        conditions: tuple[Condition, ...],
        with_session: bool,
    ) -> list[SearchResult]:
        rows = self._allowed_rows(state, conditions)
        if rows is not None and len(rows) == 0:
            return []
        return self._rank(state, text, query, k, mode, rows, with_session)

    def search_vector(
        self,
        vector: np.ndarray,
        k: int = 10,
        filters: Sequence[str | Condition] = (),
        scope: Sequence[Condition] = (),
        with_session: bool = False,
    ) -> list[SearchResult]:
        """Vector search with an already-embedded query (benchmarks, callers with vectors)."""
        _check(k, "vector")
        state = self._state
        rows = self._allowed_rows(state, as_conditions(filters) + as_conditions(scope))
        if rows is not None and len(rows) == 0:
            return []
        return self._rank(
            state, "", np.asarray(vector, np.float32), k, "vector", rows, with_session
        )

    def search_ids(
        self,
        vector: np.ndarray,
        k: int = 10,
        filters: Sequence[str | Condition] = (),
        scope: Sequence[Condition] = (),
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rids, inner products) of the k nearest allowed records: no store round trip."""
        _check(k, "vector")
        state = self._state
        rows = self._allowed_rows(state, as_conditions(filters) + as_conditions(scope))
        if rows is not None and len(rows) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        s = self.settings
        found, scores, _ = state.vector_top(vector, k, rows, s.exact_below, s.filtered_ef_max)
        return state.rids[found], scores

    def _allowed_rows(
        self, state: IndexState, conditions: tuple[Condition, ...]
    ) -> np.ndarray | None:
        """Index rows of the records matching all conditions (None = no filter), cached."""
        if not conditions:
            return None
        key = (id(state), *sorted(conditions, key=str))
        with self._lock:
            cached = self._filters.get(key)
            if cached is not None:
                self._filters.move_to_end(key)
                return cached
        from pipeline.store.db import snapshot_cursor
        from pipeline.store.search import matching_rids

        cursor = snapshot_cursor(self._con)
        try:
            rows = state.rows_of(matching_rids(cursor, conditions))
        finally:
            cursor.close()
        with self._lock:
            self._filters[key] = rows
            while len(self._filters) > self.settings.filter_cache:
                self._filters.popitem(last=False)
        return rows

    def _rank(
        self,
        state: IndexState,
        text: str,
        query: np.ndarray | None,
        k: int,
        mode: str,
        rows: np.ndarray | None,
        with_session: bool,
    ) -> list[SearchResult]:
        s = self.settings
        depth = k if mode != "hybrid" else max(k, s.candidates)
        vec_rows = kw_rows = np.zeros(0, np.int64)
        kw_all = None  # BM25 of every row: computed once, read for candidates and hits
        if mode != "keyword":
            vec_rows, _, _ = state.vector_top(query, depth, rows, s.exact_below, s.filtered_ef_max)
        if mode != "vector":
            kw_all = state.bm25.scores(text)
            kw_rows, _ = state.keyword_top(text, depth, rows, scores=kw_all)
        if mode == "hybrid":
            fused = self._fuse(state, query, kw_all, vec_rows, kw_rows)[:k]
        else:
            ranked = vec_rows if mode == "vector" else kw_rows
            fused = [(int(r), 0.0) for r in ranked[:k]]
        hit_rows = np.asarray([r for r, _ in fused], dtype=np.int64)
        vec_scores = state.vector_scores(query, hit_rows) if query is not None else None
        kw_scores = kw_all[hit_rows] if kw_all is not None else None
        return self._results(state, fused, hit_rows, vec_scores, kw_scores, mode, with_session)

    def _fuse(
        self,
        state: IndexState,
        query: np.ndarray,
        kw_all: np.ndarray,
        vec_rows: np.ndarray,
        kw_rows: np.ndarray,
    ) -> list[tuple[int, float]]:
        """Rows best first with their fused score (search.fusion, alpha, normalization)."""
        s = self.settings
        return fuse(
            vec_rows,
            kw_rows,
            lambda rows: state.vector_scores(query, rows),
            lambda rows: kw_all[rows],
            s.fusion,
            s.alpha,
            s.normalization,
            s.rrf_k,
        )

    def _results(self, state, fused, hit_rows, vec_scores, kw_scores, mode, with_session):
        from pipeline.store.db import snapshot_cursor
        from pipeline.store.rows import session_turns
        from pipeline.store.search import fetch_records

        rids = state.rids[hit_rows]
        cursor = snapshot_cursor(self._con)
        try:
            records = fetch_records(cursor, rids)
            sessions = (
                session_turns(cursor, [r["session_id"] for r in records.values()])
                if with_session
                else {}
            )
        finally:
            cursor.close()
        scores = []
        for i, (_, rrf) in enumerate(fused):
            v = float(vec_scores[i]) if vec_scores is not None else None
            kw = float(kw_scores[i]) if kw_scores is not None else None
            scores.append((rrf if mode == "hybrid" else (v if mode == "vector" else kw), v, kw))
        return to_results(
            rids, scores, records, sessions, with_session, self.settings.snippet_chars
        )


def _check(k: int, mode: str) -> None:
    if mode not in MODES:
        raise UserInputError(f"search mode {mode!r} is unknown; expected one of {', '.join(MODES)}")
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise UserInputError(f"k={k!r}: expected a whole number from 1 to {MAX_K}")


# The one-call convenience lives in project.py (params.yaml, a Searcher reused per root).
from pipeline.search.project import open_from_config, search  # noqa: E402

__all__ = ["MODES", "SearchResult", "SearchSettings", "Searcher", "open_from_config", "search"]
