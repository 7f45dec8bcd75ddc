"""What each PII type looks like: a pattern, a validator that rejects look-alikes, and the
cheap checks that let most texts skip the pattern. `pii.find_pii` applies the rules in order.

Decisions on look-alikes, all measured in tests/data/pii_labelled.jsonl:
- A dotted quad with valid octets is an IP, except right after a version or section word
  ("version", "release", "build", "section", "v"...). `1.2.3.4` alone is ambiguous; leaking
  an address costs more than masking a version or a netmask, so context, not shape, decides.
- Phones need separators or a leading `+`; a local 7-digit or a bare 10-digit number counts
  only right after a phone word ("call", "phone", "tel"...): alone it is far more often an
  order number, a timestamp or an id.
- Cards must pass Luhn, start with an issuer digit (2-6) and, when separated, use one
  separator in card-shaped groups (4-4-4-4[-x], 4-6-5, 4-6-4): ISBNs and order numbers fail.
- National ids: US SSNs (3-2-4 with dashes, outside the never-issued 000, 666, 9xx areas,
  00 groups and 0000 serials; unseparated or spaced only after "SSN", "social security",
  "ID"...) and UK National Insurance numbers (two letters from the issued prefixes, six
  digits, a suffix A-D). Other countries' ids vary too much for one shape without
  context; add a rule here with its own look-alike tests.
- Digits are ASCII: the stage NFKC-normalises after redaction, so full-width digits are not
  seen as PII.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

# ---- e-mail ---------------------------------------------------------------------------
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![\w-])"
)

# ---- IP addresses ----------------------------------------------------------------------
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Not inside a longer dotted or word token: 1.2.3.4.5 and abc1.2.3.4 are not addresses.
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)", re.ASCII)
# Version and section words right before a dotted quad: "version 2.4.1.0", "§ 1.2.3.4".
_VERSION_BEFORE = re.compile(
    r"(?:\b(?:versions?|release[sd]?|build|firmware|patch|revision|ver|rev|upgraded? to"
    r"|section|chapter|clause|figure|table|step|rule)|§)[\s:.#-]{0,3}$|\bv$",
    re.IGNORECASE,
)
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])", re.ASCII)

# ---- cards -----------------------------------------------------------------------------
# The look-behind follows the first digit so the scan can skip to digits (3x faster).
_CARD = re.compile(r"\d(?<![\d.,-]\d)(?:[ -]?\d){12,18}(?![\d-]|[.,]\d)", re.ASCII)
_SEPARATOR = re.compile(r"[ -]")
_ISBN_BEFORE = re.compile(r"ISBN(?:-1[03])?:?\s*$", re.IGNORECASE)

# ---- national ids ----------------------------------------------------------------------
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])", re.ASCII)
# Unseparated or space-separated SSNs only after a word that says what they are. The value
# is matched first (a digit-led pattern scans fast), the words before it checked after.
_SSN_BARE = re.compile(r"\d(?<![\w-]\d)\d\d( ?)\d\d\1\d{4}(?![\w-])", re.ASCII)
_ID_BEFORE = re.compile(
    r"\b(?:ssn|social security(?: number| no\.?)?|national insurance(?: number| no\.?)?"
    r"|ni (?:number|no\.?)|tax id|tin|id(?: number)?)(?: is)?[\s:#]{0,3}$",
    re.IGNORECASE | re.ASCII,
)
# UK National Insurance number: prefixes never issued (D, F, I, Q, U, V; BG, GB, NK, KN, TN,
# NT, ZZ) are excluded; upper case only, which keeps ordinary words out.
_NINO = re.compile(
    r"[A-CEGHJ-PR-TW-Z](?<!\w[A-CEGHJ-PR-TW-Z])[A-CEGHJ-NPR-TW-Z](?: ?\d{2}){3} ?[A-D]\b",
    re.ASCII,
)
_NINO_NEVER = frozenset(("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"))

# ---- phones ----------------------------------------------------------------------------
_PHONE_INTL = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,5}(?![\w-]|[.,]\d)",
    re.ASCII,
)
# North American numbers, with or without a leading "1": the first digit is consumed before
# the look-behind so the scan skips to digits; (415) forms start with a literal "(".
_PHONE_NANP = re.compile(
    r"[1-9](?<![\w+.-][1-9])(?:(?<=1)[ .-][2-9]\d\d|(?<=[2-9])\d\d)([ .-])[2-9]\d\d\1\d{4}"
    r"(?![\w-]|[.,]\d)",
    re.ASCII,
)
_PHONE_NANP_PAREN = re.compile(
    r"\((?<![\w+.-]\()[2-9]\d\d\) ?[2-9]\d\d[ .-]\d{4}(?![\w-]|[.,]\d)", re.ASCII
)
_PHONE_UK = re.compile(
    r"0(?<![\w+.-]0)[1-9](?:\d{1,3} \d{3,4} \d{4}|\d{3} \d{6})(?![\w-]|[.,]\d)", re.ASCII
)
# Local 7-digit and bare 10-digit numbers only after a word that says they are phones.
_PHONE_BARE = re.compile(r"\d(?<![\w-]\d)(?:\d\d-\d{4}|\d{9})(?![\w-]|[.,]\d)", re.ASCII)
_PHONE_BEFORE = re.compile(
    r"\b(?:phone(?: number)?|call(?:ed)?(?: me)?|tel|mobile|cell|landline|text|fax)\b"
    r"(?: is| at| on| from|:)?\s{0,3}$",
    re.IGNORECASE | re.ASCII,
)

_DIGIT = re.compile(r"\d", re.ASCII)


def luhn_ok(digits: str) -> bool:
    """True if the digit string passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _ok_ipv4(m: re.Match[str]) -> bool:
    return not _VERSION_BEFORE.search(m.string, max(0, m.start() - 24), m.start())


def _ok_ipv6(m: re.Match[str]) -> bool:
    text = m.group()
    if not _DIGIT.search(text) or text.count(":") < 2:
        return False  # "cafe::beef" and C++ "a::b" paths are not addresses
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _card_shaped(text: str) -> bool:
    """One kind of separator, in groups card issuers print: 4-4-4-4[-1..3], 4-6-5, 4-6-4."""
    if len(set(_SEPARATOR.findall(text))) != 1:
        return False
    sizes = [len(g) for g in _SEPARATOR.split(text)]
    if sizes in ([4, 6, 5], [4, 6, 4]):
        return True
    return len(sizes) >= 4 and all(n == 4 for n in sizes[:4]) and all(0 < n <= 4 for n in sizes[4:])


def _ok_card(m: re.Match[str]) -> bool:
    text = m.group()
    digits = re.sub(r"\D", "", text)
    if digits[0] not in "23456" or not luhn_ok(digits):
        return False
    if not text.isdigit() and not _card_shaped(text):
        return False
    return not _ISBN_BEFORE.search(m.string, max(0, m.start() - 10), m.start())


def _ok_ssn_bare(m: re.Match[str]) -> bool:
    digits = m.group().replace(" ", "")
    if digits[:3] in ("000", "666") or digits[0] == "9" or digits[3:5] == "00":
        return False  # never issued
    return bool(
        digits[5:] != "0000" and _ID_BEFORE.search(m.string, max(0, m.start() - 40), m.start())
    )


def _ok_phone_bare(m: re.Match[str]) -> bool:
    return bool(_PHONE_BEFORE.search(m.string, max(0, m.start() - 30), m.start()))


def _ok_nino(m: re.Match[str]) -> bool:
    return m.group()[:2] not in _NINO_NEVER


def _ok_phone_intl(m: re.Match[str]) -> bool:
    return 8 <= len(_DIGIT.findall(m.group())) <= 15  # E.164 allows at most 15 digits


def _always(m: re.Match[str]) -> bool:
    return True


_IPV4_GATE = re.compile(r"\.\d{1,3}\.\d{1,3}\.\d")  # starts with a literal: a fast scan
_SSN_GATE = re.compile(r"-\d\d-")
# Every IPv6 address has "::" or three colon-separated groups; "Answer:" and 10:30 do not.
_IPV6_GATE = re.compile(r"::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    ok: Callable[[re.Match[str]], bool]
    min_digits: int  # fewer ASCII digits in the text: the rule cannot match, skip its scan
    needle: str = ""  # a substring every match contains
    gate: re.Pattern[str] | None = None  # a cheap pattern every match contains
    dense: bool = False  # every match holds 7+ digits with at most 2 separators between


# Order matters: e-mails first (their local parts may hold digits), then shapes that are
# stricter (IPs, cards, national ids) before the loosest one (phones).
RULES: tuple[Rule, ...] = (
    Rule("email", _EMAIL, _always, 0, needle="@"),
    Rule("ip", _IPV6, _ok_ipv6, 1, gate=_IPV6_GATE),
    Rule("ip", _IPV4, _ok_ipv4, 4, gate=_IPV4_GATE),
    Rule("card", _CARD, _ok_card, 13, dense=True),
    Rule("national_id", _SSN, _always, 9, gate=_SSN_GATE),
    Rule("national_id", _SSN_BARE, _ok_ssn_bare, 9, dense=True),
    Rule("national_id", _NINO, _ok_nino, 6),
    Rule("phone", _PHONE_INTL, _ok_phone_intl, 8, needle="+"),
    Rule("phone", _PHONE_NANP, _always, 10, dense=True),
    Rule("phone", _PHONE_NANP_PAREN, _always, 10, needle="("),
    Rule("phone", _PHONE_UK, _always, 10, needle=" ", dense=True),
    Rule("phone", _PHONE_BARE, _ok_phone_bare, 7, dense=True),
)
# One scan that most digit-bearing texts fail (years, prices, scores are short or sparse):
# the digit-led rules above, each as costly as this one, then run only on the rest.
DENSE = re.compile(r"\d(?:[ .()\-]{0,2}\d){6}", re.ASCII)
ASCII_DIGITS = "0123456789"
