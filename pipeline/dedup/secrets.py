"""Secrets redaction: API keys, access tokens, private keys, JWTs, passwords and connection
strings become typed placeholders (`<API_KEY>`, `<TOKEN>`, ...), with counts.

The dedup stage runs it in the same pass as PII redaction, just before it, so a
`postgres://user:pass@host` URL is one connection string rather than an e-mail address.
Rules and the decisions on look-alikes (hashes, UUIDs, base64 data, placeholders such as
YOUR_API_KEY) are in `secret_rules.py`; benchmarks/secrets_redaction.py measures them against
detect-secrets. Like PII, a rule masks what it found with same-length filler, so a span is
counted once and later rules cannot match inside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.dedup.pii import check_types, replace_spans
from pipeline.dedup.secret_rules import GATES, LOWER_NEEDLES, NEEDLES, RULES

__all__ = ["PLACEHOLDERS", "SECRET_TYPES", "SecretSettings", "find_secrets", "redact_secrets"]

SECRET_TYPES: tuple[str, ...] = (
    "private_key",  # PEM blocks (RSA, EC, OpenSSH, PGP, PKCS#8), whole, across lines
    "connection_string",  # database URLs with a password, whole
    "jwt",  # JSON web tokens
    "aws_key",  # AWS access key ids and secret access keys
    "token",  # GitHub, GitLab and Slack tokens, Bearer tokens, `token=` values
    "api_key",  # Stripe, OpenAI/Anthropic sk-, Google AIza keys, `api_key=`/`secret=` values
    "password",  # `password=` values, `password is X`, passwords in URLs
)
PLACEHOLDERS: dict[str, str] = {t: f"<{t.upper()}>" for t in SECRET_TYPES}


@dataclass(frozen=True, slots=True)
class SecretSettings:
    """Which secret types to redact (conf/dedup `secrets:` section)."""

    enabled: bool = True
    types: tuple[str, ...] = SECRET_TYPES  # a subset keeps the others verbatim

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> SecretSettings:
        """Build from the `secrets` mapping (keys: enabled, types); unknown types are an error."""
        types = check_types(cfg, SECRET_TYPES, "dedup.secrets")
        return cls(bool(cfg.get("enabled", True)), types)


def find_secrets(text: str, settings: SecretSettings) -> list[tuple[int, int, str]]:
    """Secret spans in `text` as sorted (start, end, type), the spans `redact_secrets` replaces."""
    spans: list[tuple[int, int, str]] = []
    if not settings.enabled or not text:
        return spans
    # Which needles the text holds, in one pass; a rule runs only if it holds one of its
    # own. Masking only removes needles, so the set stays a safe over-estimate.
    present = {n for n in NEEDLES[""] if n in text}
    for gate in GATES:  # most texts hold no "_": one check skips that group's needles
        if gate in text:
            present.update(n for n in NEEDLES[gate] if n in text)
    lower = text.lower()
    present.update(n for n in LOWER_NEEDLES if n in lower)
    if not present:
        return spans
    for rule in RULES:
        if rule.kind not in settings.types or present.isdisjoint(rule.needles):
            continue

        def mask(m: Any, ok: Any = rule.ok, kind: str = rule.kind) -> str:
            span = ok(m)
            if span is None:
                return m.group()
            start, end = span
            spans.append((start, end, kind))
            # Same length keeps offsets valid; the filler ("<XX>", letters and no digits)
            # is a value no later rule accepts.
            whole = m.group()
            a, b = start - m.start(), end - m.start()
            return whole[:a] + "<" + "X" * (b - a - 2) + ">" + whole[b:]

        text = rule.pattern.sub(mask, text)
    return sorted(spans)


def redact_secrets(text: str, settings: SecretSettings) -> tuple[str, dict[str, int]]:
    """Replace secrets in `text` by typed placeholders; return the text and counts by type
    (only types found appear)."""
    return replace_spans(text, find_secrets(text, settings), PLACEHOLDERS)
