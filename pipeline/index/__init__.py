"""The vector and keyword index of the kept records, its manifest, verification and erasure.

`erase_rids(index_dir, rids)` removes records from a published index (see erase.py).
FAISS is imported inside the functions that use it, so importing this package is cheap.
"""

from __future__ import annotations

from pathlib import Path


def erase_rids(index_dir: str | Path, rids: set[int]) -> int:
    """Remove these records' vectors and keyword docs and republish; returns how many."""
    from pipeline.index.erase import erase_rids as _erase

    return _erase(index_dir, rids)


__all__ = ["erase_rids"]
