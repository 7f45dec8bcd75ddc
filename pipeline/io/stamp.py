"""One answer to "has this file been replaced or rewritten since I opened it?"."""

from __future__ import annotations

import os

Stamp = tuple[int, int, int]


def file_stamp(path: str | os.PathLike[str]) -> Stamp | None:
    """(inode, mtime in ns, size) of `path`, or None when it does not exist.

    Publishing by rename gives a new inode; a rewrite in place changes the time or the
    size. Comparing stamps, never contents, keeps the check to one `stat`.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
