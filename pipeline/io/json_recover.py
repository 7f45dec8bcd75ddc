"""Where a malformed JSON-array element ends, so that one bad element costs only itself.

First by structure: strings, escapes and brackets are tracked from the element's start to
the next `,` at array depth 1, a `]` closing the array, or a `{` that starts the next
element after a missing comma. Where the structure is lost (a bracket that closes nothing
or the wrong thing, a `, {` inside an object, a line break inside a string, the end of the
file or `max_line_bytes` reached), the reader skips to the next `, {` that starts a
complete, non-empty object followed by `,` or `]`: inside a JSON string every quote is
escaped, so no such object can hide in one. Where the quotes may be out of step (after a
string, something other than `:` `,` `}` `]` or another string; a backslash outside
strings; a `,` at array depth 1 not followed by what may start an element), such an
object found after the string where they went wrong, and before the structural end, wins.
Text no element can be recovered from runs to the end of the file, scanned in bounded
memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.io.rows import RAW_KEEP
from pipeline.io.text_window import TextWindow, surely_bad

_OUTSIDE = re.compile(r'[][{}",\\]')  # what matters to the structure outside strings
_INSIDE = re.compile(r'["\\\n]')  # inside a string; a raw line break is never JSON there
_NON_WS = re.compile(r"[^ \t\r\n]")
# What follows a string. A second string is a missing ':' or ',' (a local slip), not
# quotes out of step.
_AFTER_STRING = frozenset(':,}]"')
_STARTS = frozenset('{["-0123456789tfn]')  # what may follow a ',' in an array
# A likely element start: ', {' then a key and its ':' (only a non-empty object counts: an
# empty one could hide in a string). Bounded repeats keep the search linear.
_CANDIDATE = re.compile(
    r',[ \t\r\n]{0,1024}\{[ \t\r\n]{0,1024}"(?:[^"\\\n]|\\.){0,1024}"[ \t\r\n]{0,1024}:'
)
_CANDIDATE_SPAN = 4 * 1024 + 8  # the longest text it matches
_PROBE = 4096  # characters a likely element start is first tried on, as a cheap copy


@dataclass(frozen=True)
class Skipped:
    """The malformed text: its first RAW_KEEP characters, its size, and how it ended:
    'structure', 'skipped' (to the next element that parses) or 'rest' (of the file)."""

    head: str
    size: int
    how: str


def skip_malformed(w: TextWindow) -> Skipped:
    """Pass the malformed text at `w.start`; `w.pos` is left where reading goes on."""
    found = _structural_end(w)
    if found is None:
        return _skip_to_element(w)
    end, sep, doubt = found
    if doubt is not None:  # quotes out of step from `doubt` on: an element may hide there
        for comma, brace in _candidates(w, max(doubt, 1), end):
            if _starts_element(w, brace):
                w.pos = w.start + brace
                return Skipped(w.buf[w.start : w.start + min(comma, RAW_KEEP)], comma, "skipped")
    w.pos = w.start + end + (sep == ",")
    return Skipped(w.buf[w.start : w.start + min(end, RAW_KEEP)], end, "structure")


def _structural_end(w: TextWindow) -> tuple[int, str, int | None] | None:
    """(offset from `start`, separator, doubt) where the element ends by its structure:
    ',' (the next element follows), ']' (the array closes) or '{' (a new element begins
    without a comma). `doubt` is where quotes may have gone out of step (the string
    before something that cannot follow one, or before a backslash outside strings), or
    None. None where the structure is lost."""
    stack: list[str] = []
    in_string = False
    doubt = string_at = None
    off = 0
    while True:
        match = (_INSIDE if in_string else _OUTSIDE).search(w.buf, w.start + off)
        if match is None or (match.group() == "\\" and match.end() == len(w.buf)):
            off = (match.start() if match else len(w.buf)) - w.start
            if off > w.limit or not w.fill():
                return None
            continue
        off, char = match.start() - w.start, match.group()
        if off > w.limit:
            return None
        if in_string:
            if char == "\n":
                return None  # an unterminated string
            in_string = char != '"'
            off += 2 if char == "\\" else 1
            if not in_string and doubt is None and w.peek(off) not in _AFTER_STRING:
                doubt = string_at
        elif char == "\\":
            if doubt is None:
                doubt = string_at or 0
            off += 1
        elif char == '"':
            in_string, string_at = True, off
            off += 1
        elif char in "{[":
            if not stack and off > 0:
                return off, "{", doubt
            stack.append(char)
            off += 1
        elif char in "}]":
            if not stack:
                return (off, "]", doubt) if char == "]" else None
            if (stack.pop() == "{") != (char == "}"):
                return None  # a bracket that does not match what it would close
            off += 1
        elif not stack:  # a ',' at array depth 1
            if doubt is None and w.peek(off + 1) not in _STARTS:
                doubt = off if string_at is None else string_at
            return off, ",", doubt
        else:  # a ',' inside the element: a '{' after it in an object means a '}' is missing
            if stack[-1] == "{" and w.peek(off + 1) in "{[":
                return None
            off += 1


def _candidates(w: TextWindow, begin: int, end: int) -> list[tuple[int, int]]:
    """(comma, brace) offsets of the likely element starts between two offsets."""
    found = []
    for match in _CANDIDATE.finditer(w.buf, w.start + begin, w.start + end):
        brace = w.buf.index("{", match.start())
        found.append((match.start() - w.start, brace - w.start))
    return found


def _skip_to_element(w: TextWindow) -> Skipped:
    """Consume text from `start` to the next likely element start that parses, or to the
    end of the file, holding at most a few chunks."""
    parts: list[str] = []
    kept = size = 0

    def consume(count: int) -> None:
        nonlocal kept, size
        if kept < RAW_KEEP:
            parts.append(w.buf[w.start : w.start + min(count, RAW_KEEP - kept)])
            kept += len(parts[-1])
        size += count
        w.start += count
        w.pos = max(w.pos, w.start)

    search = 1
    while True:
        match = _CANDIDATE.search(w.buf, w.start + search)
        if match is None:
            # A likely start may straddle the end of what is read: keep its span.
            keep = max(w.start + search, len(w.buf) - _CANDIDATE_SPAN)
            consume(keep - w.start)
            search = 0
            if not w.fill():
                consume(len(w.buf) - w.start)
                return Skipped("".join(parts), size, "rest")
            continue
        brace = w.buf.index("{", match.start()) - match.start()  # from the ','
        consume(match.start() - w.start)  # the bad text ends before this ','
        if _starts_element(w, brace):
            w.pos = w.start + brace
            return Skipped("".join(parts), size, "skipped")
        search = brace + 1


def _starts_element(w: TextWindow, off: int) -> bool:
    """Whether a non-empty object at `start + off` parses and ',' or ']' follows it."""
    # Most false starts fail within a few characters: try a short copy first (a decode
    # error's message counts the lines before it, so errors deep in the window cost more).
    probe = w.buf[w.start + off : w.start + off + _PROBE]
    try:
        value, end = w.decoder.raw_decode(probe)
        follows = _NON_WS.search(probe, end)
        if follows is not None:
            return isinstance(value, dict) and bool(value) and follows.group() in ",]"
    except (ValueError, RecursionError) as exc:
        if surely_bad(exc, len(probe)):
            return False
    result = w.decode(off)
    if not isinstance(result, tuple):
        return False
    value, end = result
    return isinstance(value, dict) and bool(value) and w.peek(end) in (",", "]", "")
