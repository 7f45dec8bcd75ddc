"""An advisory inter-process lock on a file (POSIX flock), released when the holder exits."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: str | Path, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on `path`; yields False (not holding it) if non-blocking and busy.

    flock is released by the kernel when the process dies, so a killed holder never leaves
    a stale lock behind.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
