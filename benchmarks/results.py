"""One format for the sections benchmark scripts append to benchmarks/RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def append_section(title: str, command: str, lines: list[str]) -> None:
    """Append '## title (date, cores, Python)', the command that made it, and `lines`."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    python = sys.version.split()[0]
    section = [
        f"\n## {title} ({stamp}, {os.cpu_count()} cores, Python {python})",
        "",
        f"`{command}`",
        "",
        *lines,
    ]
    with RESULTS.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(section) + "\n")
