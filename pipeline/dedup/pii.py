"""PII redaction: e-mail addresses, phone numbers, card numbers, IP addresses and
national-id numbers become typed placeholders (`<EMAIL>`, `<PHONE>`, ...), with counts.

Regular expressions find candidates; a validator per type then rejects look-alikes (Luhn for
cards, octet ranges for IPv4, `ipaddress` for IPv6, issued ranges for US SSNs). Types run in
a fixed order on the text left by the previous ones, so a span is only ever counted once and
placeholders (no digits, no `@`) can never match again.

Rules and the decisions on look-alikes (measured in tests/data/pii_labelled.jsonl) are in
`pii_rules.py`.

Speed: most texts have few digits, so the rules skip on a digit count, on a literal needle
or on one shared "7 digits close together" scan before any costly expression runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.dedup.pii_rules import ASCII_DIGITS, DENSE, RULES, luhn_ok
from pipeline.errors import UserInputError

__all__ = [
    "PII_TYPES", "PLACEHOLDERS", "PiiSettings", "evaluate", "find_pii", "luhn_ok", "redact",
    "replace_spans",
]  # fmt: skip

PII_TYPES: tuple[str, ...] = ("email", "phone", "card", "ip", "national_id")
PLACEHOLDERS: dict[str, str] = {t: f"<{t.upper()}>" for t in PII_TYPES}


@dataclass(frozen=True, slots=True)
class PiiSettings:
    """Which PII types to redact (conf/dedup `pii:` section)."""

    enabled: bool = True
    types: tuple[str, ...] = PII_TYPES  # redacting a subset keeps the others verbatim

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> PiiSettings:
        """Build from the `pii` mapping (keys: enabled, types); unknown types are an error."""
        return cls(bool(cfg.get("enabled", True)), check_types(cfg, PII_TYPES, "dedup.pii"))


def check_types(cfg: Mapping[str, Any], known: Sequence[str], section: str) -> tuple[str, ...]:
    """`cfg.types` (default: all `known`), or a UserInputError naming `section` and the
    unknown types (the `pii` and `secrets` sections share it)."""
    types = tuple(cfg.get("types", known))
    unknown = sorted(set(types) - set(known))
    if unknown:
        raise UserInputError(
            f"{section}.types: unknown type(s) {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return types


def find_pii(text: str, settings: PiiSettings) -> list[tuple[int, int, str]]:
    """PII spans in `text` as sorted (start, end, type), the spans `redact` replaces."""
    spans: list[tuple[int, int, str]] = []
    if not settings.enabled or not text:
        return spans
    # Most prompts hold few digits, and every type but e-mail needs several: counting them
    # (ten C-level scans) lets most texts skip most regular expressions.
    digits = sum(map(text.count, ASCII_DIGITS))
    dense: bool | None = None  # computed once, when a rule first needs it
    for rule in RULES:
        if digits < rule.min_digits or rule.kind not in settings.types:
            continue
        if (rule.needle and rule.needle not in text) or (rule.gate and not rule.gate.search(text)):
            continue
        if rule.dense:
            dense = bool(DENSE.search(text)) if dense is None else dense
            if not dense:
                continue

        def mask(m: re.Match[str], ok=rule.ok, kind=rule.kind) -> str:
            if not ok(m):
                return m.group()
            spans.append((m.start(), m.end(), kind))
            # Same length keeps offsets valid; "<" and ">" give later rules the boundaries a
            # placeholder gives them, and the letters inside can match no rule.
            return "<" + "X" * (m.end() - m.start() - 2) + ">"

        text = rule.pattern.sub(mask, text)
    return sorted(spans)


def redact(text: str, settings: PiiSettings) -> tuple[str, dict[str, int]]:
    """Replace PII in `text` by typed placeholders; return the text and counts by type
    (only types found appear)."""
    return replace_spans(text, find_pii(text, settings), PLACEHOLDERS)


def replace_spans(
    text: str, spans: list[tuple[int, int, str]], placeholders: Mapping[str, str]
) -> tuple[str, dict[str, int]]:
    """`text` with each sorted, disjoint (start, end, type) span replaced by its type's
    placeholder, and the counts by type (PII and secrets share it)."""
    if not spans:
        return text, {}
    counts: dict[str, int] = {}
    parts: list[str] = []
    pos = 0
    for start, end, kind in spans:
        parts += (text[pos:start], placeholders[kind])
        counts[kind] = counts.get(kind, 0) + 1
        pos = end
    parts.append(text[pos:])
    return "".join(parts), counts


def evaluate(
    examples: Iterable[Mapping[str, Any]],
    settings: PiiSettings | None = None,
    finder: Callable[[str], list[tuple[int, int, str]]] | None = None,
    types: Sequence[str] = PII_TYPES,
) -> dict[str, dict[str, float]]:
    """Per-type precision and recall on labelled examples ({text, spans: [{start, end, type}]})
    of `find_pii` or of another `finder` (a peer library, or `secrets.find_secrets` with its
    `types`); a prediction counts when it overlaps an unmatched labelled span of its type."""
    settings = settings or PiiSettings()
    finder = finder or (lambda text: find_pii(text, settings))
    tally = {t: {"tp": 0, "fp": 0, "fn": 0} for t in types}
    for ex in examples:
        gold = [(s["start"], s["end"], s["type"]) for s in ex["spans"]]
        matched: set[int] = set()
        for start, end, kind in finder(ex["text"]):
            hit = next(
                (
                    i
                    for i, (gs, ge, gk) in enumerate(gold)
                    if gk == kind and i not in matched and start < ge and gs < end
                ),
                None,
            )
            if hit is None:
                tally[kind]["fp"] += 1
            else:
                matched.add(hit)
                tally[kind]["tp"] += 1
        for i, (_, _, kind) in enumerate(gold):
            if i not in matched:
                tally[kind]["fn"] += 1
    out: dict[str, dict[str, float]] = {}
    for kind, c in tally.items():
        found, actual = c["tp"] + c["fp"], c["tp"] + c["fn"]
        out[kind] = {
            **c,
            "precision": c["tp"] / found if found else 1.0,
            "recall": c["tp"] / actual if actual else 1.0,
        }
    return out
