"""A content-addressed embedding cache: append-only .npy shards plus their key files.

Layout: `<cache_dir>/vectors/<model id>/shard-<time>-<pid>-<rand>.{vecs,keys}.npy`. A key is
sha256(model id, NUL, text), so a changed text or a changed encoder is a miss. Each shard is
written to a temporary name, fsynced and renamed; the keys file is published after the
vectors file, and readers only see shards whose keys file exists, so a write killed at any
point is ignored. Writers never touch each other's shards, so concurrent writers are safe;
compaction (merging many shards into one) holds a lock and readers retry if it races them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.embed.locks import file_lock
from pipeline.embed.models import slug

log = logging.getLogger(__name__)

KEY_DTYPE = np.dtype("V32")
MAX_SHARDS = 32  # beyond this, merge: lookups open every shard
STALE_SECONDS = 3600  # temporary files older than this belong to a killed writer


def content_keys(texts: Sequence[str], model_id: str) -> np.ndarray:
    """sha256 of (model id, NUL, text) per text, as a (n,) array of 32-byte keys."""
    prefix = model_id.encode("utf-8") + b"\0"
    digests = b"".join(
        hashlib.sha256(prefix + t.encode("utf-8", "surrogatepass")).digest() for t in texts
    )
    return np.frombuffer(digests, dtype=KEY_DTYPE).copy()


class EmbeddingCache:
    """Vectors of one encoder (`model_id`), looked up and stored in bulk by content key."""

    def __init__(self, cache_dir: str | Path, model_id: str, dim: int) -> None:
        self.dir = Path(cache_dir) / "vectors" / slug(model_id)
        self.model_id = model_id
        self.dim = dim

    def keys(self, texts: Sequence[str]) -> np.ndarray:
        """Content keys of `texts` for this encoder."""
        return content_keys(texts, self.model_id)

    def shard_names(self) -> list[str]:
        """Published shards, oldest first (a shard is published when its keys file exists)."""
        if not self.dir.is_dir():
            return []
        return sorted(p.name[: -len(".keys.npy")] for p in self.dir.glob("shard-*.keys.npy"))

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask (n,), vectors (n, dim)); rows not found are zero."""
        found = np.zeros(len(keys), dtype=bool)
        vectors = np.zeros((len(keys), self.dim), dtype=np.float32)
        shards = self._open_shards()
        if not shards or not len(keys):
            return found, vectors
        all_keys = np.concatenate([k for k, _ in shards])
        shard_of = np.concatenate([np.full(len(k), i) for i, (k, _) in enumerate(shards)])
        row_of = np.concatenate([np.arange(len(k)) for k, _ in shards])
        order = np.argsort(all_keys, kind="stable")
        sorted_keys = all_keys[order]
        pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
        found = sorted_keys[pos] == keys
        source = order[pos[found]]
        targets = np.flatnonzero(found)
        for i, (_, vecs) in enumerate(shards):
            mine = shard_of[source] == i
            if mine.any():
                vectors[targets[mine]] = vecs[row_of[source[mine]]]
        return found, vectors

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Publish one new shard holding `vectors` under `keys`."""
        if not len(keys):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Vectors first, keys last: the keys file is what makes a shard visible.
        self._write(f"{name}.vecs.npy", np.ascontiguousarray(vectors, dtype=np.float32))
        self._write(f"{name}.keys.npy", np.ascontiguousarray(keys, dtype=KEY_DTYPE))

    def compact(self, max_shards: int = MAX_SHARDS) -> bool:
        """Merge all shards into one when there are more than `max_shards`; True if merged."""
        if len(self.shard_names()) <= max_shards:
            return False
        with file_lock(self.dir / ".compact.lock", blocking=False) as held:
            if not held:
                return False  # another process is compacting; it will do the job
            names = self.shard_names()
            shards = self._open_shards(names)
            if not shards:
                return False
            keys = np.concatenate([k for k, _ in shards])
            _, first = np.unique(keys, return_index=True)  # duplicates: two writers raced
            first.sort()
            vecs = np.concatenate([np.asarray(v) for _, v in shards])
            self.add(keys[first], vecs[first])
            for name in names:
                (self.dir / f"{name}.keys.npy").unlink(missing_ok=True)
                (self.dir / f"{name}.vecs.npy").unlink(missing_ok=True)
            self._remove_stale()
        return True

    def _write(self, filename: str, array: np.ndarray) -> None:
        tmp = self.dir / f".{filename}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(tmp, "wb") as fh:
                np.save(fh, array, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.dir / filename)
        finally:
            tmp.unlink(missing_ok=True)

    def _open_shards(self, names: list[str] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        # Compaction may delete shards between listing and opening: list again.
        for _ in range(5):
            try:
                return [s for n in (names or self.shard_names()) if (s := self._open(n))]
            except FileNotFoundError:
                names = None
        return []

    def _open(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            keys = np.load(self.dir / f"{name}.keys.npy", allow_pickle=False)
            vecs = np.load(self.dir / f"{name}.vecs.npy", mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise
        except (ValueError, OSError, EOFError) as exc:
            log.warning("embedding cache: ignoring unreadable shard %s/%s: %s", self.dir, name, exc)
            return None
        if keys.dtype != KEY_DTYPE or vecs.shape != (len(keys), self.dim):
            log.warning("embedding cache: ignoring malformed shard %s/%s", self.dir, name)
            return None
        return keys, vecs

    def _remove_stale(self) -> None:
        """Delete leftovers of killed writers: temporary files and vectors without keys."""
        cutoff = time.time() - STALE_SECONDS
        published = set(self.shard_names())
        for path in self.dir.iterdir():
            orphan = path.name.endswith(".vecs.npy") and path.name[:-9] not in published
            if not (path.name.endswith(".tmp") or orphan):
                continue
            try:  # another writer may rename or delete it between the listing and here
                stale = path.stat().st_mtime < cutoff
            except FileNotFoundError:
                continue
            if stale:
                path.unlink(missing_ok=True)
