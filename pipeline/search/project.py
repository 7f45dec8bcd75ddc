"""`search(...)` for scripts and `pipeline search`: one Searcher per project root (params.yaml)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import UserInputError

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
    return searcher.search(text, k=k, mode=mode, filters=filters, with_session=with_session)


def open_from_config(root: str | Path, params: Any = None) -> Searcher:
    """A Searcher for the project at `root`, from `params` or its params.yaml."""
    from pipeline.config import read_params  # plain YAML: search starts without OmegaConf
    from pipeline.embed import EmbedSettings
    from pipeline.search.api import Searcher, SearchSettings

    root = Path(root)
    cfg = params if params is not None else read_params(root / "params.yaml")
    paths = _section(cfg, "paths")
    return Searcher.open(
        root / paths["index_dir"],
        root / paths["store"],
        SearchSettings.from_cfg(_section(cfg, "search")),
        EmbedSettings.from_cfg(_section(cfg, "embed")),
        root / paths["embed_cache"],
    )


def _section(cfg: Any, key: str) -> Mapping[str, Any]:
    try:
        return cfg[key]
    except (KeyError, TypeError):
        raise UserInputError(f"config key {key!r} is missing (see conf/ and params.yaml)") from None
