"""Headless Chromium with the network cut off, for the pages that must work offline."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

# Every request but to loopback (bypassed by default) goes to a dead proxy: a CDN load fails.
OFFLINE = ["--proxy-server=127.0.0.1:9"]
# A <script>, <link> or <img> that loads from another host (strings inside the code such as
# a JSON schema's "$schema" URL are not loads).
EXTERNAL_LOAD = re.compile(
    r"<(?:script|link|img)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I
)


def chromium() -> str:
    """The chromium binary; the test skips when it is not installed (apt-get install chromium)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    return binary


def render(url: str, screenshot: Path | None = None, wait_ms: int = 8000) -> str:
    """The DOM of `url` once scripts ran (offline); a PNG too when `screenshot` is given."""
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", *OFFLINE,
            f"--virtual-time-budget={wait_ms}", "--window-size=1280,1400"]  # fmt: skip
    if screenshot is not None:
        subprocess.run(
            [*base, f"--screenshot={screenshot}", url], capture_output=True, timeout=180, check=True
        )
    done = subprocess.run(
        [*base, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=True
    )
    return done.stdout
