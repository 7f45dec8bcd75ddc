"""The JSON form of a filter over HTTP: checked, bounded, and compiled to its filter string.

`filters` in POST /search and POST /rag takes, beside the CLI's strings, objects that
spell the same tree (pipeline/search/filter_syntax.py `from_json`):

    {"field": "metadata.app_version", "op": "=", "value": "2.1"}     op: = == != < <= > >=
    {"and": [...]}   {"or": [...]}   {"not": {...}}

Each object is parsed into the tree a string parses into, under the same limits
(FILTER_TERMS_MAX conditions, FILTER_DEPTH_MAX nesting), and replaced by that tree's string
form, which must read back to the same tree and fit FILTER_MAX like a string filter. So the
routes, the query log and the retrieval stage's replay of judged queries see one syntax,
and a JSON filter can do exactly what a string filter can. A bad object is a 422 naming
the problem (pydantic reports a ValueError raised here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import UserInputError
from pipeline.service.limits import FILTER_DEPTH_MAX, FILTER_MAX, FILTER_TERMS_MAX, FILTERS_MAX

# The string syntax's operators: `in` (Python API only) has no string form; use {"or": ...}.
JSON_OPS = ("=", "==", "!=", "<", "<=", ">", ">=")
_GROUPS = ("and", "or", "not")


def compile_filter(data: Mapping[str, Any]) -> str:
    """One JSON filter as its filter string; UserInputError naming the problem."""
    from pipeline.search.filter_syntax import from_json, parse

    _check(data)
    tree = from_json(data)  # shapes, fields, typed values, FILTER_TERMS_MAX, FILTER_DEPTH_MAX
    text = str(tree)
    if len(text) > FILTER_MAX:
        raise UserInputError(
            f"filter {_short(data)}: {len(text)} characters as a filter string; at most "
            f"{FILTER_MAX}, as for a string filter"
        )
    if parse(text) != tree:  # never expected: the log and the replay would see another filter
        raise UserInputError(f"filter {_short(data)}: has no exact string form")
    return text


def compile_filters(items: Any) -> Any:
    """`filters` with each JSON object replaced by its string (strings pass unchanged);
    anything but a list is left for pydantic to reject."""
    if not isinstance(items, list) or len(items) > FILTERS_MAX:
        return items  # pydantic rejects it (type, max_length) before any is compiled
    out = []
    for n, item in enumerate(items):
        if isinstance(item, Mapping):
            try:
                item = compile_filter(item)
            except UserInputError as exc:
                raise ValueError(f"filters[{n}]: {exc}") from None
        out.append(item)
    return out


def _check(data: Any, depth: int = 0, seen: list[int] | None = None) -> None:
    """The one thing from_json allows that a string cannot say: `op: in` (anywhere). Runs
    first (from_json would choke on `in` with a scalar), so it stops walking where the
    limits are passed, leaving from_json to name them."""
    seen = [0] if seen is None else seen
    seen[0] += 1
    # Every node of a tree within the limits is visited: each leaf sits under at most
    # FILTER_DEPTH_MAX groups.
    if depth > FILTER_DEPTH_MAX or seen[0] > (FILTER_TERMS_MAX + 1) * (FILTER_DEPTH_MAX + 2):
        return
    if not isinstance(data, Mapping):
        return  # from_json: "expected an object"
    for kind in _GROUPS:
        if kind in data:
            inner = data[kind]
            for part in inner[: FILTER_TERMS_MAX + 1] if isinstance(inner, list) else [inner]:
                _check(part, depth + 1, seen)
            return
    op = data.get("op", "=")
    if not isinstance(op, str) or op not in JSON_OPS:
        raise UserInputError(
            f"filter {_short(data)}: op {op!r}; expected one of {' '.join(JSON_OPS)} "
            '(for several values, {"or": [...]})'
        )


def _short(data: Any) -> str:
    text = repr(dict(data) if isinstance(data, Mapping) else data)
    return text if len(text) <= 120 else text[:117] + "..."
