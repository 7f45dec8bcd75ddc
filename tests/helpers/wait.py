"""Deadline polling: wait for a condition another thread or process makes true, never for a
fixed time (a sleep either wastes time or, on a loaded machine, is too short)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """Poll `condition` until it returns something true and return it; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)  # a poll interval, not an ordering: the condition decides
    return result
