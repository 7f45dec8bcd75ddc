"""A gate for the searcher: many requests at once, or one exclusive swap that waits for them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Gate:
    """Readers share the gate; `exclusive()` closes it to new readers and waits for the rest.

    Swapping in a replaced store needs the old searcher's DuckDB connection closed first:
    DuckDB hands a new connection the cached instance of a path while any connection to it
    is open, which would keep serving the replaced file.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._closed = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the gate for one request (waits only while a swap is in progress)."""
        with self._cond:
            while self._closed:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if self._active == 0:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the gate alone: new requests wait, requests in flight finish first."""
        with self._cond:
            while self._closed:
                self._cond.wait()
            self._closed = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._closed = False
                self._cond.notify_all()
