"""Planted content with known ground truth: PII values and duplicate variants."""

from __future__ import annotations

import random
import re

from pipeline.sample.similarity import jaccard, joined, shingles

PII_TYPES: tuple[str, ...] = ("email", "phone", "card", "ip", "national_id")

_FIRST = ("anna", "li", "omar", "sofia", "jan", "priya", "tom", "mei", "luca", "zoe", "ivan")
_LAST = ("meyer", "chen", "haddad", "rossi", "novak", "shah", "baker", "wong", "silva")
_DOMAINS = ("example.com", "mail.example.org", "corp.example.net", "uni.example.ac.uk")


def luhn_complete(digits: str) -> str:
    """Append the Luhn check digit to `digits`."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # every second digit from the right, counting the check digit as first
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return digits + str((10 - total % 10) % 10)


def _email(rng: random.Random) -> str:
    sep = rng.choice((".", "_", "", "+news."))
    return (
        f"{rng.choice(_FIRST)}{sep}{rng.choice(_LAST)}{rng.randint(1, 99)}@{rng.choice(_DOMAINS)}"
    )


def _phone(rng: random.Random) -> str:
    n = rng.randint
    return rng.choice(
        (
            f"+1 {n(201, 989)}-{n(200, 999)}-{n(0, 9999):04d}",
            f"({n(201, 989)}) {n(200, 999)}-{n(0, 9999):04d}",
            f"{n(201, 989)}.{n(200, 999)}.{n(0, 9999):04d}",
            f"+44 20 {n(7000, 8999)} {n(0, 9999):04d}",
            f"+33 1 {n(10, 99)} {n(10, 99)} {n(10, 99)} {n(10, 99)}",
            f"+49 30 {n(1000000, 99999999)}",
            f"{n(201, 989)}-{n(200, 999)}-{n(0, 9999):04d}",
        )
    )


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice((("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("37", 15)))
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    number = luhn_complete(body)
    sep = rng.choice((" ", "-", ""))
    if length == 15:  # American Express prints 4-6-5
        return sep.join((number[:4], number[4:10], number[10:]))
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def _ip(rng: random.Random) -> str:
    n = rng.randint
    return rng.choice(
        (
            f"192.168.{n(0, 255)}.{n(1, 254)}",
            f"10.{n(0, 255)}.{n(0, 255)}.{n(1, 254)}",
            f"203.0.113.{n(1, 254)}",
            f"2001:db8::{n(1, 0xFFFF):x}",
            f"fe80::{n(1, 0xFFFF):x}:{n(1, 0xFFFF):x}:{n(1, 0xFFFF):x}",
            f"2001:0db8:85a3:0000:0000:8a2e:{n(0, 0xFFFF):04x}:{n(0, 0xFFFF):04x}",
        )
    )


def _national_id(rng: random.Random) -> str:
    if rng.random() < 0.7:  # US SSN: area 001-665 or 667-899, group 01-99, serial 0001-9999
        area = rng.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    # UK National Insurance number: two prefix letters (D, F, I, Q, U, V never used), 6 digits.
    letters = "ABCEGHJKLMNPRSTWXYZ"  # D, F, I, Q, U, V are never used; O never second
    n = rng.randint
    prefix = "GB"
    while prefix in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):  # never issued
        prefix = rng.choice(letters) + rng.choice(letters)
    return f"{prefix} {n(10, 99)} {n(10, 99)} {n(10, 99)} {rng.choice('ABCD')}"


PII_MAKERS = {
    "email": _email,
    "phone": _phone,
    "card": _card,
    "ip": _ip,
    "national_id": _national_id,
}
PII_SENTENCES = {
    "email": ("You can email me at {v}.", "My address is {v} if you need it.", "cc {v} please."),
    "phone": ("Call me on {v} after six.", "My number is {v}.", "Reach the office at {v}."),
    "card": ("The card ending in my statement is {v}.", "I paid with card {v}.", "Card: {v}"),
    "ip": (
        "The server at {v} refuses connections.",
        "Requests come from {v}.",
        "Host {v} is down.",
    ),
    "national_id": ("My social security number is {v}.", "ID on file: {v}.", "NI number {v}."),
}


def pii_sentence(rng: random.Random, kind: str) -> str:
    """A sentence carrying one PII value of `kind`."""
    return rng.choice(PII_SENTENCES[kind]).format(v=PII_MAKERS[kind](rng))


# Exact-duplicate variants: each one normalises (NFKC, case, whitespace) to the original.
_FULLWIDTH = {
    c: chr(ord(c) + 0xFEE0) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
}


def _ascii_case(text: str, rng: random.Random) -> str:
    # Only ASCII letters change case: lower() of an upper-cased "ß" would not round-trip.
    upper = rng.random() < 0.5
    return "".join(
        c.upper() if upper and c.isascii() else c.lower() if c.isascii() else c for c in text
    )


def _whitespace(text: str, rng: random.Random) -> str:
    parts = text.split(" ")
    out = parts[0]
    for part in parts[1:]:
        out += rng.choice((" ", " ", "  ", "\t", " \n ")) + part
    return "  " + out + " \n"


def _unicode(text: str, rng: random.Random) -> str:
    chars = list(text.replace("fi", "\ufb01"))  # the "fi" ligature is NFKC-equal to "fi"
    for i, c in enumerate(chars):
        if c in _FULLWIDTH and rng.random() < 0.3:
            chars[i] = _FULLWIDTH[c]
        elif c == " " and rng.random() < 0.3:
            chars[i] = "\u00a0"  # no-break space
    return "".join(chars)


VARIANTS = {
    "identical": lambda text, rng: text,
    "case": _ascii_case,
    "whitespace": _whitespace,
    "unicode": _unicode,
}

_EDIT_WORDS = ("really", "also", "today", "quickly", "maybe", "again", "please", "still", "now")


def word_edits(text: str, rng: random.Random, k: int) -> str:
    """`k` single-word edits (substitute, delete or insert) at random word positions."""
    parts = re.split(r"(\s+)", text)  # even indexes are words, odd ones the whitespace between
    for _ in range(k):
        i = 2 * rng.randrange((len(parts) + 1) // 2)
        op = rng.choice(("sub", "del", "ins"))
        if op == "sub":
            parts[i] = rng.choice(_EDIT_WORDS)
        elif op == "del" and len(parts) > 2:
            del parts[i : i + 2]
        else:
            parts[i:i] = [rng.choice(_EDIT_WORDS), " "]
    return "".join(parts)


def near_copy(
    prompt: str, response: str | None, rng: random.Random, lo: float, hi: float
) -> tuple[str, float] | None:
    """A word-edited prompt whose prompt+response Jaccard to the original is in [lo, hi]."""
    base = shingles(joined(prompt, response))
    for _ in range(40):
        edited = word_edits(prompt, rng, rng.randint(1, 4))
        sim = jaccard(base, shingles(joined(edited, response)))
        if lo <= sim <= hi:
            return edited, sim
    return None
