"""The filter syntax: `label=math OR label=coding`, `NOT origin=synthetic`, parentheses.

    filter    := any
    any       := all ("OR" all)*
    all       := factor ("AND" factor)*
    factor    := "NOT" factor | "(" any ")" | condition
    condition := FIELD OP VALUE        OP: = == != < <= > >=
    FIELD     := label | quality | ... | metadata.KEY[.KEY...]
    VALUE     := "double quoted" | 'single quoted' (\\ escapes) | bare text

A bare value runs to the next ` AND ` / ` OR ` (upper case, between spaces), or to a `)`
closing an open parenthesis, so `label=customer support` needs no quotes; a value holding
those words, quotes or a closing parenthesis is quoted. AND binds tighter than OR. The
same tree has a JSON form (`from_json`): {"field", "op", "value"}, {"and": [...]},
{"or": [...]}, {"not": {...}}. Both are bounded by pipeline/service/limits.py (conditions
per filter, nesting depth), whoever calls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline.errors import UserInputError
from pipeline.search.filters import FIELDS, AllOf, AnyOf, Condition, Filter, Not, is_metadata
from pipeline.service.limits import FILTER_DEPTH_MAX, FILTER_TERMS_MAX

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)*")
# Longest operators first so `>=` is not read as `>` followed by a value starting with `=`.
_OP = re.compile(r"\s*(>=|<=|!=|==|=|>|<)")
_KEYWORD = re.compile(r"(NOT|AND|OR)(?=[\s(]|$)")
_BARE_END = re.compile(r"\s+(?:AND|OR)(?=[\s(]|$)")
_HELP = "expected FIELD=VALUE or a range such as quality>=4, joined by AND, OR, NOT"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos, self.depth, self.terms = text, 0, 0, 0

    def fail(self, problem: str) -> UserInputError:
        return UserInputError(f"filter {self.text!r}: {problem}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def keyword(self, word: str) -> bool:
        self.skip()
        match = _KEYWORD.match(self.text, self.pos)
        if match and match.group(1) == word:
            self.pos = match.end()
            return True
        return False

    def parse(self) -> Filter:
        tree = self.any()
        self.skip()
        if self.pos < len(self.text):
            raise self.fail(f"unexpected {self.text[self.pos :]!r}; {_HELP}")
        return tree

    def any(self) -> Filter:
        parts = [self.all()]
        while self.keyword("OR"):
            parts.append(self.all())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def all(self) -> Filter:
        parts = [self.factor()]
        while self.keyword("AND"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def factor(self) -> Filter:
        self.skip()
        if self.keyword("NOT"):
            return Not(self.nested(self.factor))
        if self.text.startswith("(", self.pos):
            self.pos += 1
            tree = self.nested(self.any)
            self.skip()
            if not self.text.startswith(")", self.pos):
                raise self.fail("missing ')'")
            self.pos += 1
            return tree
        return self.condition()

    def nested(self, parse: Any) -> Filter:
        self.depth += 1
        if self.depth > FILTER_DEPTH_MAX:
            raise self.fail(f"nested deeper than {FILTER_DEPTH_MAX} levels")
        try:
            return parse()
        finally:
            self.depth -= 1

    def condition(self) -> Condition:
        self.terms += 1
        if self.terms > FILTER_TERMS_MAX:
            raise self.fail(f"more than {FILTER_TERMS_MAX} conditions")
        field = _FIELD.match(self.text, self.pos)
        if not field:
            rest = self.text[self.pos :] or "the end"
            raise self.fail(f"expected a field at {rest!r}; {_HELP}")
        op = _OP.match(self.text, field.end())
        if not op:
            if field.group(0) not in FIELDS and "." not in field.group(0):
                known = ", ".join(FIELDS)
                raise self.fail(
                    f"unknown field {field.group(0)!r} or missing operator; fields: {known}, "
                    "metadata.KEY; " + _HELP
                )
            raise self.fail(f"missing operator after {field.group(0)!r}; {_HELP}")
        name = field.group(0)
        if name not in FIELDS and not is_metadata(name):
            raise self.fail(
                f"unknown field {name!r}; expected one of {', '.join(FIELDS)} or metadata.KEY"
            )
        self.pos = op.end()
        value = self.value(op.group(1))
        try:
            return Condition(field.group(0), "=" if op.group(1) == "==" else op.group(1), value)
        except UserInputError as exc:
            raise self.fail(str(exc)) from None

    def value(self, op: str) -> str:
        self.skip()
        if self.pos < len(self.text) and self.text[self.pos] in "\"'":
            return self.quoted(self.text[self.pos])
        end = len(self.text)
        stop = _BARE_END.search(self.text, self.pos)
        if stop:
            end = stop.start()
        if self.depth > 0:
            close = self.text.find(")", self.pos, end)
            end = close if close >= 0 else end
        raw = self.text[self.pos : end].strip()
        if not raw:
            raise self.fail(f"missing value after {op!r}")
        self.pos = end
        return raw

    def quoted(self, quote: str) -> str:
        out, i = [], self.pos + 1
        while i < len(self.text):
            ch = self.text[i]
            if ch == "\\" and i + 1 < len(self.text):
                out.append(self.text[i + 1])
                i += 2
                continue
            if ch == quote:
                self.pos = i + 1
                return "".join(out)
            out.append(ch)
            i += 1
        raise self.fail(f"unterminated {quote} quote")


def parse(text: str) -> Filter:
    """Parse a filter string into a tree (a lone condition stays a `Condition`)."""
    if not isinstance(text, str) or not text.strip():
        raise UserInputError(f"filter {text!r}: empty; {_HELP}")
    return _Parser(text).parse()


def from_json(data: Mapping[str, Any]) -> Filter:
    """The JSON form of a filter as a tree: {"or": [{"field": "label", "value": "a"}, ...]}."""
    counts = {"terms": 0}
    return _from_json(data, counts, 0)


def _from_json(data: Any, counts: dict[str, int], depth: int) -> Filter:
    if depth > FILTER_DEPTH_MAX:
        raise UserInputError(f"filter: nested deeper than {FILTER_DEPTH_MAX} levels")
    if not isinstance(data, Mapping):
        raise UserInputError(f"filter {data!r}: expected an object")
    keys = set(data)
    if keys in ({"and"}, {"or"}):
        (kind,) = keys
        items = data[kind]
        if not isinstance(items, list) or not items:
            raise UserInputError(f"filter {{{kind!r}: ...}}: expected a non-empty list")
        parts = tuple(_from_json(item, counts, depth + 1) for item in items)
        return (AllOf if kind == "and" else AnyOf)(parts)
    if keys == {"not"}:
        return Not(_from_json(data["not"], counts, depth + 1))
    if "field" in keys and "value" in keys and keys <= {"field", "op", "value"}:
        counts["terms"] += 1
        if counts["terms"] > FILTER_TERMS_MAX:
            raise UserInputError(f"filter: more than {FILTER_TERMS_MAX} conditions")
        op = data.get("op", "=")
        return Condition(str(data["field"]), "=" if op == "==" else op, data["value"])
    raise UserInputError(
        f"filter {dict(data)!r}: expected {{field, op, value}}, {{and: [...]}}, "
        "{or: [...]}, or {not: {...}}"
    )
