"""Search over the kept records: vector (FAISS), keyword (BM25) and hybrid, with filters.

Public API: `pipeline.search.api.Searcher`, `pipeline.search.api.search`,
`pipeline.search.filters.parse_filter`/`Condition`, `pipeline.search.results.SearchResult`.

`pipeline.search(...)` is a function in pipeline/__init__.py, but importing this
subpackage rebinds the attribute `pipeline.search` to the module. The module is made
callable so `pipeline.search("text", k=5)` keeps working either way.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from pipeline.search.api import search

        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
