"""`search(...)` for scripts and `pipeline search`: one Searcher per project root (params.yaml)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import UserInputError
from pipeline.store.scope import Scope

if TYPE_CHECKING:
    from pipeline.search.api import Searcher
    from pipeline.search.filters import Condition
    from pipeline.search.results import SearchResult

_SEARCHERS: dict[Path, Searcher] = {}
_SEARCHERS_LOCK = threading.Lock()


def search(
    text: str,
    k: int = 10,
    mode: str = "hybrid",
    filters: Sequence[str | Condition] = (),
    with_session: bool = False,
    root: str | Path = ".",
    params: Any = None,
) -> list[SearchResult]:
    """Search the index under `root` (params.yaml paths); the Searcher is reused per root."""
    root = Path(root).resolve()
    with _SEARCHERS_LOCK:
        searcher = _SEARCHERS.get(root)
        if searcher is None:
            searcher = open_from_config(root, params)
            _SEARCHERS[root] = searcher
    searcher.reload_if_changed()
    # The owner of the files searches them all; API keys get their scope in pipeline/api.
    return searcher.search(
        text, k=k, mode=mode, filters=filters, scope=Scope.all(), with_session=with_session
    )


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
