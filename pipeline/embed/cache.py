"""A content-addressed embedding cache: append-only .npy shards plus their key files.

Layout: `<cache_dir>/vectors/<model id>/shard-<time>-<pid>-<rand>.{vecs,keys}.npy`. A key is
sha256(model id, NUL, text), so a changed text or a changed encoder is a miss. Each shard is
written to a temporary name, fsynced and renamed; the keys file is published after the
vectors file, and readers only see shards whose keys file exists, so a write killed at any
point is ignored. Writers never touch each other's shards, so concurrent writers are safe;
publishing a shard, compaction and erasure hold the directory's lock (`.lock`, short), and
readers retry if a rename races them.

Erasure (`forget`) removes the entries of given texts from every encoder's directory and
leaves tombstones (`<cache_dir>/tombstones/*.npy`: sha256 of each erased text, never the
text): a train or index run that embedded those texts before the erasure and publishes
them after it drops them under the lock, so it cannot write them back. Each directory
names its encoder in `model.txt`, because the keys of a text depend on it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.embed.models import slug
from pipeline.errors import BusyError
from pipeline.io.atomic import write_durably
from pipeline.io.lock import exclusive

log = logging.getLogger(__name__)

KEY_DTYPE = np.dtype("V32")
MAX_SHARDS = 32  # beyond this, merge: lookups open every shard
STALE_SECONDS = 3600  # temporary files older than this belong to a killed writer
MODEL_FILE = "model.txt"  # the encoder id of a directory: erasure recomputes keys with it
TOMBSTONES = "tombstones"


def text_digests(texts: Sequence[str]) -> np.ndarray:
    """sha256 of each text alone, as a (n,) array of 32-byte values: what a tombstone holds."""
    digests = b"".join(hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest() for t in texts)
    return np.frombuffer(digests, dtype=KEY_DTYPE).copy()


def tombstones(cache_dir: str | Path) -> np.ndarray:
    """Every tombstoned text digest under `cache_dir`, sorted."""
    folder = Path(cache_dir) / TOMBSTONES
    parts = [np.load(f, allow_pickle=False) for f in sorted(folder.glob("*.npy"))]
    parts = [p for p in parts if p.dtype == KEY_DTYPE]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, KEY_DTYPE)


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
        self.root = Path(cache_dir)
        self.dir = self.root / "vectors" / slug(model_id)
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

    def add(self, keys: np.ndarray, vectors: np.ndarray, texts: Sequence[str] = ()) -> None:
        """Publish one new shard holding `vectors` under `keys`.

        `texts` (the texts of `keys`, in order) lets erased texts be dropped: pass them
        whenever they are at hand. Without them a tombstone cannot be matched.
        """
        if not len(keys):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock(wait=None):
            if not (self.dir / MODEL_FILE).exists():
                self._write(MODEL_FILE, self.model_id)
            if len(texts):
                # Checked under the lock that `forget` scrubs under: either this shard is
                # published first and scrubbed, or the tombstone is seen here.
                dead = np.isin(text_digests(texts), tombstones(self.root))
                if dead.any():
                    keys, vectors = keys[~dead], vectors[~dead]
                    if not len(keys):
                        return
            self._publish(keys, vectors)

    def _publish(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Vectors first, keys last: the keys file is what makes a shard visible.
        self._write(f"{name}.vecs.npy", np.ascontiguousarray(vectors, dtype=np.float32))
        self._write(f"{name}.keys.npy", np.ascontiguousarray(keys, dtype=KEY_DTYPE))

    def _lock(self, wait: float | None) -> Any:
        return exclusive(self.dir / ".lock", f"embedding cache writer ({self.dir.name})", wait)

    def compact(self, max_shards: int = MAX_SHARDS) -> bool:
        """Merge all shards into one when there are more than `max_shards`; True if merged."""
        if len(self.shard_names()) <= max_shards:
            return False
        try:
            lock = self._lock(wait=0)
            lock.__enter__()
        except BusyError:
            return False  # another writer holds the directory; a later call merges
        try:
            names = self.shard_names()
            shards = self._open_shards(names)
            if not shards:
                return False
            keys = np.concatenate([k for k, _ in shards])
            _, first = np.unique(keys, return_index=True)  # duplicates: two writers raced
            first.sort()
            vecs = np.concatenate([np.asarray(v) for _, v in shards])
            self._publish(keys[first], vecs[first])
            for name in names:
                (self.dir / f"{name}.keys.npy").unlink(missing_ok=True)
                (self.dir / f"{name}.vecs.npy").unlink(missing_ok=True)
            self._remove_stale()
        finally:
            lock.__exit__(None, None, None)
        return True

    def forget_keys(self, keys: np.ndarray | None) -> int:
        """Rewrite every shard holding one of `keys` without it, or drop every shard (None).

        The caller holds the directory's lock."""
        removed = 0
        for name in self.shard_names():
            try:
                shard = self._open(name)
            except FileNotFoundError:
                continue
            if shard is None:
                continue
            held, vecs = shard
            gone = np.ones(len(held), bool) if keys is None else np.isin(held, keys)
            if not gone.any():
                continue
            removed += int(gone.sum())
            if (~gone).any():
                self._publish(held[~gone], np.asarray(vecs)[~gone])
            (self.dir / f"{name}.keys.npy").unlink(missing_ok=True)
            (self.dir / f"{name}.vecs.npy").unlink(missing_ok=True)
        return removed

    def _write(self, filename: str, data: np.ndarray | str) -> None:
        payload = data.encode("utf-8") if isinstance(data, str) else _npy_bytes(data)
        write_durably(self.dir / filename, payload)

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
        # dim 0: any width (erasure rewrites shards of encoders it knows only by directory).
        width_ok = vecs.ndim == 2 and (self.dim == 0 or vecs.shape[1] == self.dim)
        if keys.dtype != KEY_DTYPE or not width_ok or len(vecs) != len(keys):
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


def forget(cache_dir: str | Path, texts: Sequence[str], name: str) -> int:
    """Erase `texts` from every encoder's vectors under `cache_dir` and tombstone them.

    The tombstone file `name` is written (and fsynced) before any directory is scrubbed, so
    a writer that publishes after the scrub sees it. A directory without `model.txt` (made
    before directories named their encoder) cannot have its keys recomputed: all its
    shards are dropped; it is a cache, the next run re-embeds. Returns entries removed.
    """
    root = Path(cache_dir)
    if not texts:
        return 0
    folder = root / TOMBSTONES
    folder.mkdir(parents=True, exist_ok=True)
    digests = np.unique(text_digests(texts))
    old = np.load(folder / f"{name}.npy") if (folder / f"{name}.npy").exists() else None
    if old is None or not np.isin(digests, old).all():
        merged = digests if old is None else np.union1d(old, digests)
        write_durably(folder / f"{name}.npy", _npy_bytes(merged))
    removed = 0
    for directory in sorted((root / "vectors").glob("*")):
        if not directory.is_dir():
            continue
        model_file = directory / MODEL_FILE
        model_id = model_file.read_text(encoding="utf-8") if model_file.exists() else None
        cache = EmbeddingCache(root, model_id or directory.name, dim=0)
        cache.dir = directory  # the directory as found, whatever its encoder's slug
        with cache._lock(wait=None):
            if model_id is None:
                removed += cache.forget_keys(None)
            else:
                removed += cache.forget_keys(content_keys(texts, model_id))
    return removed


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
