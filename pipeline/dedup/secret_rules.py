"""What each secret type looks like: a pattern, a check that returns the span to redact (or
None for a look-alike), and literal needles that let most texts skip the pattern.
`secrets.find_secrets` applies the rules in order.

Decisions, measured on benchmarks/secrets_redaction.py's labelled set and on real t0-prompts
and hh-rlhf:
- Provider keys are matched by their documented prefix and length (AWS AKIA/ASIA, GitHub
  ghp_/github_pat_, GitLab glpat-, Slack xox?-, Stripe sk_/rk_, OpenAI/Anthropic sk-,
  Google AIza); the random part must look random (enough distinct characters), so
  `AKIAXXXXXXXXXXXXXXXX` and `sk-xxxx...` stay. Values holding EXAMPLE (AWS's documented
  example keys) are placeholders.
- Random-looking strings with no prefix (git SHAs, sha256 hex, UUIDs, base64 image data, ids
  in URLs) are never flagged on entropy alone: an entropy check runs only on the value of
  an `api_key=`/`token:`/`secret=` assignment or after `Bearer`, where a keyword anchors it.
- Also Hugging Face (hf_), SendGrid (SG.) and npm tokens (through `_authToken=`).
- Passwords: the value of a `password=`/`pwd:`/`DB_PASS=` assignment (quoted: any value;
  bare: one holding a digit or symbol, since a bare word is usually a variable in code),
  `password is X` in prose when X mixes letters with digits or symbols, and the password
  of a `scheme://user:pass@host` URL. Placeholders (YOUR_PASSWORD, ****, <password>,
  ${VAR}, "password") and code (`os.environ[...]`, `getpass()`) stay. Also `--password X`
  flags and HTTP Basic credentials (base64 that decodes to `user:password`). A bare YAML
  word (`password: bluebird`) is missed: bare words are variables far more often.
- A database URL with credentials (postgres://, mysql://, mongodb+srv://, redis://...) is a
  connection string and is redacted whole: its host and user name say where to use it.
- A PEM private key block is redacted whole, across lines; a block cut off before its END
  line is redacted to the next blank line, the next `-----` line or the end. Public keys and
  certificates stay.
"""

from __future__ import annotations

import base64
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

Span = tuple[int, int]

# Parts of values people write instead of a real secret.
_PLACEHOLDER = re.compile(
    r"your|example|xxxx|\.\.\.|\*\*\*|<[\w .-]*>|\$\{|\$\(|\{\{|^\$[A-Za-z_]\w*$|^%[s(]|"
    r"placeholder|redacted|dummy|changeme|^(?:password|passwd|secret|none|null|nil|true|false|"
    r"str|string|int|bytes|undefined|required|optional|empty|hidden|.)$",
    re.IGNORECASE,
)
_IDENT_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")  # self.password, cfg.db.pwd
_HAS_DIGIT = re.compile(r"\d")
_HAS_ALPHA = re.compile(r"[A-Za-z]")
_HAS_OTHER = re.compile(r"[^A-Za-z\s]")  # a digit or symbol
_NOT_IDENT = re.compile(r"[^A-Za-z_\s]")  # a digit or a symbol other than "_"


def entropy(value: str) -> float:
    """Shannon entropy of `value` in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


def placeholder(value: str) -> bool:
    """True if `value` is a placeholder (YOUR_API_KEY, ****, <token>, ${VAR}, "password")."""
    return bool(_PLACEHOLDER.search(value))


def random_looking(body: str, distinct: int = 8) -> bool:
    """The random part of a provider key: enough distinct characters, no placeholder word."""
    return len(set(body)) >= distinct and not placeholder(body)


# ---- private keys ----------------------------------------------------------------------
# The body runs to the next "-----" (its END line, or another block if the key was cut off)
# or to a blank line; possessive, so many BEGIN lines without an END stay linear.
_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?)-----"
    r"(?:[^\n-]|-(?!----)|\n(?![ \t]*\n))*+(?:-----END \1PRIVATE KEY\2-----)?"
)

# ---- JSON web tokens: header and payload are base64url JSON, so both start with eyJ ------
_JWT = re.compile(r"(?<![\w-])eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]*(?![\w-])", re.ASCII)

# ---- URLs with credentials -----------------------------------------------------------------
_DB_URL = re.compile(
    r"(?<![\w+.-])(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|"
    r"sqlserver|oracle|clickhouse|cockroachdb|couchdb|neo4j(?:\+s)?|bolt|snowflake|db2|"
    r"jdbc:\w+)(?:\+\w+)?://[^\s:/@'\"<>]*:([^\s@/'\"<>]+)@[^\s'\"<>)\]]+",
    re.IGNORECASE | re.ASCII,
)
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"<>]+:([^\s@/'\"<>]+)@", re.I)

# ---- provider keys ---------------------------------------------------------------------
_AWS_ID = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)([A-Z0-9]{16})(?![A-Za-z0-9])")
_AWS_SECRET = re.compile(
    r"(?:aws_?secret_?access_?key|secret_?access_?key)[\"']?\s*(?:=|:|=>)\s*[\"']?"
    r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
    re.IGNORECASE,
)
_GITHUB = re.compile(
    r"(?<![\w-])(?:gh[pousr]_([A-Za-z0-9]{36})|github_pat_(\w{82}))(?![\w-])", re.ASCII
)
_GITLAB = re.compile(r"(?<![\w-])gl(?:pat|dt|ptt|rt)-([\w-]{20,})(?![\w-])", re.ASCII)
_SLACK = re.compile(
    r"(?<![\w-])(?:xox[abposr]-([A-Za-z0-9-]{10,})|xapp-\d-([A-Za-z0-9-]{10,}))(?![\w-])"
    r"|https://hooks\.slack\.com/services/(T\w+/B\w+/\w+)",
    re.ASCII,
)
_STRIPE = re.compile(r"(?<![\w-])(?:sk|rk)_(?:live|test)_([A-Za-z0-9]{20,99})(?![\w-])")
# OpenAI (sk-..., sk-proj-...), Anthropic (sk-ant-api03-...), and others in the same style.
_SK = re.compile(r"(?<![\w-])sk-([\w-]{20,200})(?![\w-])", re.ASCII)
_HUGGINGFACE = re.compile(r"(?<![\w-])hf_([A-Za-z]{34,40})(?![\w-])", re.ASCII)
_SENDGRID = re.compile(r"(?<![\w-])SG\.([\w-]{22}\.[\w-]{43})(?![\w-])", re.ASCII)
_GOOGLE = re.compile(r"(?<![\w-])AIza([\w-]{35})(?![\w-])", re.ASCII)
# HTTP Basic credentials are base64 of "user:password".
_BASIC = re.compile(r"\bBasic\s+([A-Za-z0-9+/]{8,}={0,2})(?![\w+/=])", re.ASCII)
_BEARER = re.compile(r"\b[Bb]earer\s+([\w~+/.-]{16,}=*)(?![\w~+/.=-])", re.ASCII)

# ---- keyword-anchored assignments --------------------------------------------------------
_SEP = r"[\"']?\s*(?:=|:|=>|:=)\s*"
# A quoted value, or a bare one that ends where code or prose would ("key = f(x)" is code).
_VALUE = (
    r"(?:\"([^\"\n]{1,200})\"|'([^'\n]{1,200})'"
    r"|([^\s\"'<>,;(){}\[\]`]{1,200})(?=[\s,;)}\]\"'`]|$))"
)
_PASSWORD = re.compile(
    r"(?:password|passwd|passphrase|pwd|(?<=\w)[_.-]pass)"
    rf"(?:{_SEP}|(\s+(?:is|was)\s*:?\s+)){_VALUE}",
    re.IGNORECASE,
)


def _keyword(words: str) -> re.Pattern[str]:
    """`<word>[_id] = value` (also `: value`, `=> value`), the word in group 1; a prefix
    (OPENAI_API_KEY) needs no matching: only the value is redacted."""
    return re.compile(rf"({words})(?:[_.-]?id)?{_SEP}{_VALUE}", re.IGNORECASE)


# A command-line flag followed by its value: `mysql --password hunter2`.
_FLAG = re.compile(rf"(?<![\w-])--[\w-]*(?:password|passwd|pass)\s+(?!-){_VALUE}", re.IGNORECASE)
_KEYWORD = _keyword(
    r"api[_.-]?key|apikey|api[_.-]?secret|access[_.-]?key|secret[_.-]?key|client[_.-]?secret|"
    r"account[_.-]?key|shared[_.-]?access[_.-]?key|private[_.-]?key|secret"
)
_TOKEN = _keyword("token")


def _group(m: re.Match[str]) -> tuple[int, str]:
    """The first group that matched: its index and text."""
    g = next(i for i in range(1, (m.lastindex or 0) + 1) if m.group(i) is not None)
    return g, m.group(g)


def _whole(m: re.Match[str]) -> Span | None:
    return m.span()


def _provider(distinct: int) -> Callable[[re.Match[str]], Span | None]:
    """The whole key, when its random part (the first group that matched) looks random."""

    def ok(m: re.Match[str]) -> Span | None:
        return m.span() if random_looking(_group(m)[1], distinct) else None

    return ok


def _ok_sk(m: re.Match[str]) -> Span | None:
    body = m.group(1)
    rnd = body.rsplit("-", 1)[-1] if body.startswith(("ant-", "proj-", "svcacct-")) else body
    if not (_HAS_DIGIT.search(body) and _HAS_ALPHA.search(body)):
        return None
    return m.span() if random_looking(body, 10) and entropy(rnd) >= 3.3 else None


def _secret_value(value: str) -> bool:
    """A keyword-anchored token or key value: long, mixed, random enough, not a placeholder."""
    return (
        len(value) >= 16
        and " " not in value
        and bool(_HAS_DIGIT.search(value) and _HAS_ALPHA.search(value))
        and not placeholder(value)
        and not _IDENT_PATH.fullmatch(value)
        and entropy(value) >= 3.3
    )


def _ok_bearer(m: re.Match[str]) -> Span | None:
    return m.span(1) if _secret_value(m.group(1)) else None


def _ok_group(m: re.Match[str]) -> Span | None:
    """The value group of AWS secrets and URL passwords, unless it is a placeholder."""
    return None if placeholder(m.group(1)) or "EXAMPLE" in m.group(1) else m.span(1)


def _ok_db_url(m: re.Match[str]) -> Span | None:
    return None if placeholder(m.group(1)) else m.span()


def _ok_basic(m: re.Match[str]) -> Span | None:
    try:
        decoded = base64.b64decode(m.group(1), validate=True).decode("utf-8")
    except ValueError:  # not base64, or not UTF-8 text
        return None
    user, sep, password = decoded.partition(":")
    return m.span(1) if sep and user and password and decoded.isprintable() else None


def _ok_flag(m: re.Match[str]) -> Span | None:
    g, value = _value_of(m, 1)
    return None if placeholder(value) or len(value) < 3 else m.span(g)


def _ok_password(m: re.Match[str]) -> Span | None:
    g, value = _value_of(m, 2)
    if m.group(1) is not None:  # prose: "my password is X"
        value = value.rstrip(".,;:!?")
        mixed = _HAS_ALPHA.search(value) and _HAS_OTHER.search(value)
        if not mixed or len(value) < 5 or placeholder(value):
            return None
        return m.start(g), m.start(g) + len(value)
    if placeholder(value) or len(value) < 3 or _IDENT_PATH.fullmatch(value):
        return None
    if g == 4 and not _NOT_IDENT.search(value):  # a bare identifier is a variable in code
        return None
    return m.span(g)


def _value_of(m: re.Match[str], first: int) -> tuple[int, str]:
    g = next(i for i in range(first, first + 3) if m.group(i) is not None)
    return g, m.group(g)


def _ok_keyword(m: re.Match[str]) -> Span | None:
    g, value = _value_of(m, 2)
    return m.span(g) if _secret_value(value) else None


# "pass" alone is in every "passage": the needles are the forms the pattern accepts.
_PASSWORD_NEEDLES = ("passw", "pwd", "passphrase", "_pass", ".pass", "-pass")


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    ok: Callable[[re.Match[str]], Span | None]  # the span to redact, None for a look-alike
    needles: tuple[str, ...]  # one of them is in every match (in the lower-cased text if lower)
    lower: bool = False
    gate: str = ""  # in every match too, and rare in prose: checked once per text, first


# Order matters: whole blocks and URLs before the keys they may contain (a connection string
# before the e-mail-like `pass@host`), provider shapes before keyword assignments, so an
# `api_key=sk-...` line is counted once, as the provider's key.
RULES: tuple[Rule, ...] = (
    Rule("private_key", _PEM, _whole, ("PRIVATE KEY",)),
    Rule("connection_string", _DB_URL, _ok_db_url, ("://",)),
    Rule("jwt", _JWT, _whole, ("eyJ",)),
    Rule("aws_key", _AWS_ID, _provider(8), ("AKIA", "ASIA", "ABIA", "ACCA")),
    Rule("aws_key", _AWS_SECRET, _ok_group, ("access",), lower=True),
    Rule(
        "token",
        _GITHUB,
        _provider(10),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        gate="_",
    ),
    Rule("token", _GITLAB, _provider(10), ("glpat-", "gldt-", "glptt-", "glrt-"), gate="-"),
    Rule("token", _SLACK, _provider(8), ("xox", "xapp-", "hooks.slack.com")),
    Rule(
        "api_key",
        _STRIPE,
        _provider(10),
        ("sk_live_", "sk_test_", "rk_live_", "rk_test_"),
        gate="_",
    ),
    Rule("api_key", _SK, _ok_sk, ("sk-",), gate="-"),
    Rule("api_key", _GOOGLE, _provider(10), ("AIza",)),
    Rule("api_key", _SENDGRID, _provider(10), ("SG.",)),
    Rule("token", _HUGGINGFACE, _provider(10), ("hf_",), gate="_"),
    Rule("token", _BEARER, _ok_bearer, ("bearer",), lower=True),
    Rule("password", _URL_PASSWORD, _ok_group, ("://",)),
    Rule("password", _BASIC, _ok_basic, ("Basic",)),
    Rule("password", _FLAG, _ok_flag, ("--",), gate="-"),
    Rule("password", _PASSWORD, _ok_password, _PASSWORD_NEEDLES, lower=True),
    Rule("token", _TOKEN, _ok_keyword, ("token",), lower=True),
    Rule("api_key", _KEYWORD, _ok_keyword, ("key", "secret"), lower=True),
)
# Needles by gate ("" = none) and, for keyword rules, in lower case: `find_secrets` tests
# each once per text. A lower-case needle is kept apart ("key" vs a provider's "KEY").
GATES: tuple[str, ...] = tuple(sorted({r.gate for r in RULES if r.gate}))
NEEDLES: dict[str, frozenset[str]] = {
    gate: frozenset(n for r in RULES if r.gate == gate and not r.lower for n in r.needles)
    for gate in ("", *GATES)
}
LOWER_NEEDLES: frozenset[str] = frozenset(n for r in RULES if r.lower for n in r.needles)
