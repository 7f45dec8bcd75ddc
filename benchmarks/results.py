"""One format for the sections benchmark scripts append to benchmarks/RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

# What the Makefile exports: no model downloads, no telemetry, no tokenizer thread pools.
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "TOKENIZERS_PARALLELISM": "false",
}


def offline() -> None:
    """Set OFFLINE's variables in this process where the caller has not set them."""
    for key, value in OFFLINE.items():
        os.environ.setdefault(key, value)


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
