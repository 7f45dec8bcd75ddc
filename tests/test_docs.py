"""The documentation holds together: relative links resolve and the README stays short.

Links are read from README.md, docs/**/*.md and benchmarks/RESULTS.md, outside code blocks
and code spans. A link to a file must name one that exists; a link with an anchor into a
Markdown file must name one of its headings, slugged as GitHub slugs them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README_MAX_LINES = 300

# Pages written on branches not merged yet; a link to them is accepted while they are absent.
# Remove an entry once its page is on main.
PENDING: set[str] = set()

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]"  # [text]
    r"\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"  # (target "title")
)
_REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    """The Markdown files whose links are checked."""
    files = [REPO / "README.md", REPO / "benchmarks" / "RESULTS.md"]
    files += sorted((REPO / "docs").rglob("*.md"))
    return [f for f in files if f.exists()]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of the lines outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            out.append((number, line))
    return out


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition."""
    found = []
    for number, line in prose_lines(text):
        line = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)  # `[x](y)` is not a link
        found += [(number, m.group(1)) for m in _INLINE_LINK.finditer(line)]
        ref = _REFERENCE_DEF.match(line)
        if ref:
            found.append((number, ref.group(1)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: rendered text, lower case, punctuation dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = text.replace("`", "").replace("*", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, numbered as GitHub numbers repeats."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    """One message per link of `path` (a file under `root`) that does not resolve."""
    problems = []
    for number, target in links(path.read_text(encoding="utf-8")):
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # external: not checked offline
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{number}: {target}"
        try:
            rel = dest.relative_to(root.resolve()).as_posix()
        except ValueError:
            problems.append(f"{where}: points outside the repository")
            continue
        if not dest.exists():
            if rel not in PENDING:
                problems.append(f"{where}: {rel} does not exist")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading with anchor #{anchor} in {rel}")
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_readme_stays_short() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_the_checker_catches_what_it_should(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# Top\n", encoding="utf-8")
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text(
        "# A page\n\n## Its `section` (v2)\n\n## Its `section` (v2)\n\n"
        "[ok](../README.md#top) [ok](#its-section-v2-1) [web](https://example.com)\n"
        "[gone](missing.md) [bad anchor](#nowhere) [out](../../elsewhere.md)\n"
        "```\n[in code](also-missing.md)\n```\n`[span](span-missing.md)`\n"
        "[ref]: ./nor-this.md\n",
        encoding="utf-8",
    )
    problems = [p.split(": ", 2)[2] for p in broken_links(page, tmp_path)]
    assert problems == [
        "docs/missing.md does not exist",
        "no heading with anchor #nowhere in docs/page.md",
        "points outside the repository",
        "docs/nor-this.md does not exist",
    ]
