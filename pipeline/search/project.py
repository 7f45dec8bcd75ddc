"""`search(...)` for scripts and `pipeline search`: one Searcher per project root (params.yaml)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import UserInputError
from pipeline.search.results import SearchResults
from pipeline.store.scope import Scope

if TYPE_CHECKING:
    from pipeline.search.api import Searcher
    from pipeline.search.filters import Condition

_SEARCHERS: dict[Path, Searcher] = {}
_QUERY_LOGS: dict[Path, Path | None] = {}  # per root: the service DB searches are logged to
_SEARCHERS_LOCK = threading.Lock()


def search(
    text: str,
    k: int = 10,
    mode: str = "hybrid",
    filters: Sequence[str | Condition] = (),
    with_session: bool = False,
    root: str | Path = ".",
    params: Any = None,
    log: bool = True,
    diversity: str | None = None,
) -> SearchResults:
    """Search the index under `root` (params.yaml paths); the Searcher is reused per root.

    The search is written to the query log (paths.service_db) unless `log` is False; the
    hits' `query_id` names it for relevance judgments (pipeline/service/judgments.py).
    """
    from pipeline.search.logged import log_search

    root = Path(root).resolve()
    with _SEARCHERS_LOCK:
        searcher = _SEARCHERS.get(root)
        if searcher is None:
            searcher = open_from_config(root, params)
            _SEARCHERS[root] = searcher
            _QUERY_LOGS[root] = _service_db(root, params)
    searcher.reload_if_changed()
    started = time.perf_counter()
    # The owner of the files searches them all; API keys get their scope in pipeline/api.
    hits = searcher.search(
        text, k=k, mode=mode, filters=filters, scope=Scope.all(), with_session=with_session,
        diversity=diversity,
    )  # fmt: skip
    service_db = _QUERY_LOGS.get(root) if log else None
    return log_search(service_db, text, filters, mode, k, hits, time.perf_counter() - started)


def _service_db(root: Path, params: Any) -> Path | None:
    """Where searches under `root` are logged; None when the config names no service DB."""
    from pipeline.config import read_params

    try:
        cfg = params if params is not None else read_params(root / "params.yaml")
        return root / cfg["paths"]["service_db"]
    except (KeyError, TypeError):
        return None


def open_from_config(root: str | Path, params: Any = None) -> Searcher:
    """A Searcher for the project at `root`, from `params` or its params.yaml."""
    from pipeline.config import read_params  # plain YAML: search starts without OmegaConf

    root = Path(root)
    cfg = params if params is not None else read_params(root / "params.yaml")
    paths = _section(cfg, "paths")
    return open_searcher(
        root / paths["index_dir"],
        root / paths["store"],
        root / paths["embed_cache"],
        _section(cfg, "search"),
        _section(cfg, "embed"),
    )


def open_searcher(
    index_dir: Path,
    store: Path,
    embed_cache: Path,
    search_cfg: Mapping[str, Any],
    embed_cfg: Mapping[str, Any],
) -> Searcher:
    """The one Searcher factory from config sections (`search`, `embed`): the CLI, scripts
    and the HTTP service all open theirs here."""
    from pipeline.embed import EmbedSettings
    from pipeline.search.api import Searcher, SearchSettings

    return Searcher.open(
        index_dir,
        store,
        SearchSettings.from_cfg(search_cfg),
        EmbedSettings.from_cfg(embed_cfg),
        embed_cache,
    )


def _section(cfg: Any, key: str) -> Mapping[str, Any]:
    try:
        return cfg[key]
    except (KeyError, TypeError):
        raise UserInputError(f"config key {key!r} is missing (see conf/ and params.yaml)") from None
