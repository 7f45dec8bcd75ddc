"""Search the kept records: vector, keyword (BM25) or hybrid (fused), with pre-filters.

`Searcher` holds the loaded index snapshot, the query encoder and a read-only DuckDB
connection; it is safe to share between threads. Every search takes the caller's `Scope`
(pipeline/store/scope.py), with no default: hits and session turns never leave it.
`search(...)` is the one-call convenience for scripts and `pipeline.search`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import UserInputError
from pipeline.io.stamp import file_stamp
from pipeline.search.diversity import checked_diversity
from pipeline.search.filters import Condition, as_conditions
from pipeline.search.rank import rank
from pipeline.search.results import SearchResult, to_results
from pipeline.search.settings import SearchSettings
from pipeline.search.state import IndexChanged, IndexState, signature
from pipeline.store.scope import Scope, require_scope

MODES: tuple[str, ...] = ("vector", "keyword", "hybrid")
MAX_K = 1000


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
        state = IndexState.load(
            self.index_dir, self.settings.bm25_k1, self.settings.bm25_b, self.settings.read_ahead
        )
        encoder = state.manifest.get("encoder", {})
        for key, want in self._expected_encoder.items():
            if encoder.get(key) != want:
                raise UserInputError(
                    f"{self.index_dir}: index built with encoder {key}={encoder.get(key)!r}, "
                    f"but embed.{key}={want!r}; rebuild with `pipeline index build`"
                )
        return state

    def _open_store(self) -> tuple[Any, Any]:
        from pipeline.store.db import open_snapshot

        stamp = self._store_stamp()  # before opening: a change after it is seen next time
        return open_snapshot(self.store_path), stamp

    def _store_stamp(self) -> tuple[Any, ...]:
        """The store's stamp and its side files' (anomaly scores...): the filters read both."""
        from pipeline.store.annotations import SIDE_FILES

        sides = (file_stamp(side.under(self.store_path)) for side in SIDE_FILES)
        return (file_stamp(self.store_path), *sides)

    def reload_if_changed(self) -> bool:
        """Swap in a republished index (or store); searches in flight finish on the old one."""
        with self._lock:
            changed = False
            stamp = self._store_stamp()
            if stamp[0] is not None and stamp != self._store_sig:
                # The old connection is dropped, not closed: closing it would close the
                # cursors that searches in other threads still read (tests/test_serve_swap.py);
                # it closes when the last of them lets go.
                self._con, self._store_sig = self._open_store()
                self._filters.clear()
                changed = True
            if signature(self.index_dir) not in (None, self._state.signature):
                self._state = self._load_state()  # a half-published one raises: keep the old
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
        *,
        scope: Scope,
        with_session: bool = False,
        diversity: str | None = None,
    ) -> list[SearchResult]:
        """The k best records for `text` in `scope`, among those matching every filter
        (`diversity`: none | session | mmr, default `search.diversity`)."""
        require_scope(scope)
        text = (text or "").strip()
        if not text:
            raise UserInputError("empty query: give the text to search for")
        _check(k, mode)
        diversity = checked_diversity(diversity, self.settings.diversity)
        conditions = as_conditions(filters)
        query = None
        if mode != "keyword":
            if self._encode is None:
                raise UserInputError("this searcher has no query encoder; use mode=keyword")
            query = self._encode(text)
        try:
            return self._search_state(
                self._state, text, query, k, mode, conditions, scope, with_session, diversity
            )
        except IndexChanged:
            # The keyword matrix is loaded lazily; the index was republished since the
            # snapshot loaded (an erasure, a build). Load the new one and answer from it.
            self.reload_if_changed()
            return self._search_state(
                self._state, text, query, k, mode, conditions, scope, with_session, diversity
            )

    def _search_state(
        self,
        state: IndexState,
        text: str,
        query: np.ndarray | None,
        k: int,
        mode: str,
        conditions: tuple[Condition, ...],
        scope: Scope,
        with_session: bool,
        diversity: str = "none",
    ) -> list[SearchResult]:
        rows = self._allowed_rows(state, conditions, scope)
        if rows is not None and len(rows) == 0:
            return []
        if diversity == "none":
            hit_rows, scores = rank(state, self.settings, text, query, k, mode, rows)
        else:
            from pipeline.search.diversity import diversified_rank

            hit_rows, scores = diversified_rank(
                state, self.settings, text, query, k, mode, rows, diversity, self._session_ids
            )
        return self._results(state.rids[hit_rows], scores, scope, with_session)

    def _session_ids(self, rids: np.ndarray) -> dict[int, str | None]:
        from pipeline.store.db import snapshot_cursor
        from pipeline.store.sessions import session_ids

        cursor = snapshot_cursor(self._con)
        try:
            return session_ids(cursor, rids)
        finally:
            cursor.close()

    def search_vector(
        self,
        vector: np.ndarray,
        k: int = 10,
        filters: Sequence[str | Condition] = (),
        *,
        scope: Scope,
        with_session: bool = False,
    ) -> list[SearchResult]:
        """Vector search with an already-embedded query (benchmarks, callers with vectors)."""
        _check(k, "vector")
        query = np.asarray(vector, np.float32)
        conditions = as_conditions(filters)
        return self._search_state(
            self._state, "", query, k, "vector", conditions, require_scope(scope), with_session
        )

    def search_ids(
        self,
        vector: np.ndarray,
        k: int = 10,
        filters: Sequence[str | Condition] = (),
        *,
        scope: Scope,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rids, inner products) of the k nearest allowed records: no store round trip."""
        _check(k, "vector")
        state = self._state
        rows = self._allowed_rows(state, as_conditions(filters), require_scope(scope))
        if rows is not None and len(rows) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        s = self.settings
        found, scores, _ = state.vector_top(vector, k, rows, s.exact_below, s.filtered_ef_max)
        return state.rids[found], scores

    def _allowed_rows(
        self, state: IndexState, conditions: tuple[Condition, ...], scope: Scope
    ) -> np.ndarray | None:
        """Index rows of the records in scope matching all conditions (None = all), cached."""
        if not conditions and not scope.restricted:
            return None
        key = (id(state), scope, *sorted(conditions, key=str))
        with self._lock:
            cached = self._filters.get(key)
            if cached is not None:
                self._filters.move_to_end(key)
                return cached
        from pipeline.store.db import snapshot_cursor
        from pipeline.store.search import matching_rids

        cursor = snapshot_cursor(self._con)
        try:
            rows = state.rows_of(matching_rids(cursor, conditions, scope))
        finally:
            cursor.close()
        with self._lock:
            self._filters[key] = rows
            while len(self._filters) > self.settings.filter_cache:
                self._filters.popitem(last=False)
        return rows

    def _results(
        self,
        rids: np.ndarray,
        scores: list[tuple[float, float | None, float | None]],
        scope: Scope,
        with_session: bool,
    ) -> list[SearchResult]:
        """The hits' records and session turns, read in the scope (a hit outside is dropped)."""
        records, sessions = self.records(rids, scope, with_session)
        return to_results(
            rids, scores, records, sessions, with_session, self.settings.snippet_chars
        )

    def records(
        self, rids: Sequence[int] | np.ndarray, scope: Scope, with_session: bool = False
    ) -> tuple[dict[int, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """Whole records (not snippets) by rid in the scope, and their sessions' turns if asked."""
        from pipeline.store.db import snapshot_cursor
        from pipeline.store.rows import session_turns
        from pipeline.store.search import fetch_records

        cursor = snapshot_cursor(self._con)
        try:
            records = fetch_records(cursor, rids, require_scope(scope))
            session_ids = [r["session_id"] for r in records.values()] if with_session else []
            sessions = session_turns(cursor, session_ids, scope)
        finally:
            cursor.close()
        return records, sessions


def _check(k: int, mode: str) -> None:
    if mode not in MODES:
        raise UserInputError(f"search mode {mode!r} is unknown; expected one of {', '.join(MODES)}")
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise UserInputError(f"k={k!r}: expected a whole number from 1 to {MAX_K}")


# The one-call convenience lives in project.py (params.yaml, a Searcher reused per root).
from pipeline.search.project import open_from_config, search  # noqa: E402

__all__ = ["MODES", "SearchResult", "SearchSettings", "Searcher", "open_from_config", "search"]
