"""What a test left running: child processes of the test process."""

from __future__ import annotations

import psutil


def ray_children() -> list[str]:
    """Ray processes (raylet, GCS, workers) this test process started and left running."""
    names = []
    for child in psutil.Process().children(recursive=True):
        try:
            line = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "ray" in line:
            names.append(line[:120])
    return names
