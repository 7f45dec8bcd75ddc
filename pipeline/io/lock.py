"""Advisory inter-process locks (POSIX flock) whose file names the holder: one helper for all.

The kernel drops a flock when its holder exits, even on `kill -9`, so a crashed run never
leaves a stale lock behind; the file itself stays (removing it would race a new holder).
The holder writes `{"pid": ..., "command": ...}` into the file after taking the lock, so a
process that finds it held can say who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pipeline.errors import BusyError

POLL_SECONDS = 0.05  # deadline polling: flock has no timed wait


def holder_of(path: str | Path) -> str:
    """Who holds (or last held) the lock file at `path`: "`command` (pid N)", or "unknown"."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "unknown"
    return _describe(text)


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"`{info['command']}` (pid {int(info['pid'])})"
    except (ValueError, KeyError, TypeError):
        # A bare pid: the format of earlier versions.
        return f"pid {text}" if text.isdigit() else "unknown"


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def exclusive(
    path: str | Path,
    command: str,
    wait: float | None = 0.0,
    on_wait: Callable[[str], None] | None = None,
    busy_hint: str = "wait for it to finish",
) -> Iterator[None]:
    """Hold an exclusive flock on `path` as `command`.

    `wait`: 0 fails at once when the lock is held, None waits as long as it takes, a number
    of seconds waits at most that long (polling). `on_wait(holder)` is called once, before
    waiting, so a user learns at once why nothing happens. On failure: BusyError naming
    the holder (command and pid), then `busy_hint`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try(fd):
            holder = _describe(os.pread(fd, 4096, 0).decode("utf-8", "replace").strip())
            if wait == 0:
                raise BusyError(f"{path}: held by {holder}; {busy_hint}")
            if on_wait is not None:
                on_wait(holder)
            if wait is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                deadline = time.monotonic() + wait
                while not _try(fd):
                    if time.monotonic() >= deadline:
                        holder = _describe(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
                        raise BusyError(
                            f"{path}: still held by {holder} after {wait:g} s; {busy_hint}"
                        )
                    time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command}).encode() + b"\n", 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@contextmanager
def try_exclusive(path: str | Path, command: str) -> Iterator[bool]:
    """Hold the lock if it is free: yields True (held) or False (someone else holds it)."""
    stack = ExitStack()
    try:
        stack.enter_context(exclusive(path, command, wait=0))
    except BusyError:
        yield False
        return
    with stack:
        yield True
