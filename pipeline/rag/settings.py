"""conf/rag/default.yaml as typed values: how context is built, and the optional generator."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import UserInputError

MODES: tuple[str, ...] = ("vector", "keyword", "hybrid")
PASSAGE_FIELDS = frozenset({"n", "id", "text", "prompt", "response", "session_id", "turn"})
TEMPLATE_FIELDS = frozenset({"context", "question"})


@dataclass(frozen=True)
class GeneratorSettings:
    """An OpenAI-compatible chat completions endpoint; unset (no base_url) means no generation."""

    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None  # the variable's name: a key never sits in conf/
    timeout_seconds: float = 60.0
    max_tokens: int = 256
    temperature: float = 0.0

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> GeneratorSettings:
        return cls(**_known(cls, cfg or {}, "rag.generator"))


@dataclass(frozen=True)
class RagSettings:
    mode: str = "hybrid"
    candidates: int = 20
    budget_tokens: int = 1500
    tokenizer: str = "all-MiniLM-L6-v2"
    neighbours: int = 1
    neighbour_hits: int = 3
    merge_jaccard: float = 0.8
    merge_ngram: int = 3
    passage: str = "[{n}] {text}"
    template: str = "Passages:\n{context}\n\nQuestion: {question}\nAnswer:"
    generator: GeneratorSettings = field(default_factory=GeneratorSettings)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserInputError(f"rag.mode={self.mode!r}: expected one of {', '.join(MODES)}")
        for key in ("candidates", "budget_tokens", "merge_ngram"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise UserInputError(
                    f"rag.{key}={getattr(self, key)!r}: expected a whole number >= 1"
                )
        for key in ("neighbours", "neighbour_hits"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                raise UserInputError(
                    f"rag.{key}={getattr(self, key)!r}: expected a whole number >= 0"
                )
        if not 0.0 < self.merge_jaccard <= 1.0:
            raise UserInputError(f"rag.merge_jaccard={self.merge_jaccard!r}: expected 0 < x <= 1")
        _check_template("rag.passage", self.passage, PASSAGE_FIELDS, required={"n"})
        _check_template("rag.template", self.template, TEMPLATE_FIELDS, required=TEMPLATE_FIELDS)

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> RagSettings:
        known = _known(cls, cfg or {}, "rag")
        known["generator"] = GeneratorSettings.from_cfg(known.get("generator"))
        return cls(**known)


def _known(cls: type, cfg: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
    if unknown:
        raise UserInputError(f"{where}: unknown key(s) {', '.join(unknown)} (see conf/rag/)")
    return dict(cfg)


def _check_template(key: str, text: str, allowed: frozenset, required: set | frozenset) -> None:
    """A bad template fails at load, naming the key and the field, not mid-request."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise UserInputError(f"{key}: not a valid template: {exc}") from None
    if names - allowed:
        raise UserInputError(
            f"{key}: unknown field(s) {', '.join(sorted(names - allowed))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    if set(required) - names:
        raise UserInputError(
            f"{key}: must contain {', '.join('{' + n + '}' for n in sorted(required))}"
        )
