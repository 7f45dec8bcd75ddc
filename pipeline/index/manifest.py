"""The index directory's layout and its manifest (what was built, from what, how well)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import NotFoundError, PipelineError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FAISS_FILE = "index.faiss"
VECTORS_FILE = "vectors.npy"  # float32 (n, dim), rows in `rids` order: exact search, rebuilds
RIDS_FILE = "rids.npy"  # int64 (n,), sorted: row i of vectors is record rids[i]
KEYWORD_DIR = "keyword"


def content_hash(rids: np.ndarray, vectors: np.ndarray) -> str:
    """sha256 of what the index holds: the rid order and the vectors, byte for byte."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(rids, dtype="<i8").tobytes())
    # In blocks of rows (the same bytes in the same order): a memory-mapped matrix is
    # hashed without a copy of it in RAM.
    for lo in range(0, len(vectors), 65_536):
        digest.update(np.ascontiguousarray(vectors[lo : lo + 65_536], dtype="<f4").tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(index_dir: str | Path) -> dict[str, Any]:
    """The manifest of a built index, or NotFoundError telling the user how to build one."""
    path = Path(index_dir) / MANIFEST
    if not path.exists():
        raise NotFoundError(
            f"{Path(index_dir)}: no index built yet; run `pipeline index build` (or `dvc repro`)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{path}: unreadable manifest ({exc})") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise PipelineError(
            f"{path}: index format {manifest.get('format_version')!r}, expected "
            f"{FORMAT_VERSION}; rebuild with `pipeline index build`"
        )
    return manifest


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest into a (temporary, not yet published) index directory."""
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (directory / MANIFEST).write_text(text, encoding="utf-8")
