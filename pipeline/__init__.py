"""An experiment and data-management platform for prompt/response data.

Importing the package is cheap on purpose: heavy libraries (torch, Lightning, FAISS) are
imported by the modules that need them, so the CLI starts fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def search(*args: Any, **kwargs: Any) -> Any:
    """Search the kept records; see `pipeline.search.api.search`."""
    from pipeline.search.api import search as _search

    return _search(*args, **kwargs)
