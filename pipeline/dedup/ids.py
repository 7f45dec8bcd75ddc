"""Stable integer keys for records."""

from __future__ import annotations

import xxhash

_MASK_63 = (1 << 63) - 1


def rid_of(record_id: str) -> int:
    """The record's 63-bit key: xxhash64 of the UTF-8 id, masked so it fits a signed BIGINT."""
    return xxhash.xxh64_intdigest(record_id.encode("utf-8")) & _MASK_63


def default_id(file: str, line: int) -> str:
    """The id of a row whose file has none: `<file name>:<line>`."""
    return f"{file}:{line}"
