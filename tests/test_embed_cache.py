"""The embedding cache: bulk lookups, kill-safety, compaction, concurrent writers (no model)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.embed import EmbedSettings, embed_texts
from pipeline.embed.cache import EmbeddingCache, content_keys
from pipeline.errors import UserInputError

DIM = 8


def vectors_for(keys: np.ndarray) -> np.ndarray:
    """A deterministic vector per key, so any row read back can be checked."""
    raw = np.frombuffer(keys.tobytes(), dtype=np.uint8).reshape(len(keys), 32)
    return raw[:, :DIM].astype(np.float32)


def texts(start: int, stop: int) -> list[str]:
    return [f"text number {i}" for i in range(start, stop)]


def test_keys_depend_on_text_and_model_id() -> None:
    a = content_keys(["hello", "hello", "hello "], "m1")
    b = content_keys(["hello"], "m2")
    assert a[0] == a[1]
    assert a[0] != a[2]
    assert a[0] != b[0]
    assert a.dtype.itemsize == 32


def test_round_trip_and_misses(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "model-x", DIM)
    stored = cache.keys(texts(0, 100))
    cache.add(stored[:60], vectors_for(stored[:60]))
    cache.add(stored[60:], vectors_for(stored[60:]))
    query = cache.keys([*texts(50, 120), "text number 3"])
    found, vecs = cache.lookup(query)
    assert found.tolist() == [True] * 50 + [False] * 20 + [True]
    np.testing.assert_array_equal(vecs[found], vectors_for(query[found]))
    assert not vecs[~found].any()
    # Another encoder id is another namespace: nothing found.
    other = EmbeddingCache(tmp_path, "model-y", DIM)
    assert not other.lookup(other.keys(texts(0, 10)))[0].any()


def test_partial_and_corrupt_writes_are_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = EmbeddingCache(tmp_path, "model-x", DIM)
    good = cache.keys(texts(0, 10))
    cache.add(good, vectors_for(good))
    # A writer killed after its vectors but before its keys: the shard is not published.
    lost = cache.keys(texts(10, 20))
    np.save(cache.dir / "shard-99999999999999999999-1-aaaaaaaa.vecs.npy", vectors_for(lost))
    # A writer killed mid-write leaves only a temporary file.
    (cache.dir / ".shard-x.keys.npy.1234.tmp").write_bytes(b"\x93NUMPY half")
    # A damaged published keys file (disk trouble): ignored with a warning, not a crash.
    (cache.dir / "shard-99999999999999999998-1-bbbbbbbb.vecs.npy").write_bytes(b"junk")
    (cache.dir / "shard-99999999999999999998-1-bbbbbbbb.keys.npy").write_bytes(b"junk")
    found, vecs = cache.lookup(np.concatenate([good, lost]))
    assert found.tolist() == [True] * 10 + [False] * 10
    np.testing.assert_array_equal(vecs[:10], vectors_for(good))
    assert "ignoring unreadable shard" in caplog.text


_WRITER = """
import os, sys, numpy as np
from pipeline.embed.cache import EmbeddingCache

# Stop for the kill at one exact moment: the 11th shard's vectors are published and its keys
# file is written in full under a temporary name, not yet renamed into place (the rename is
# what publishes a shard). The real os.replace runs for everything else.
publish, shards = os.replace, [0]

def replace(src, dst):
    if str(dst).endswith(".keys.npy"):
        shards[0] += 1
        if shards[0] == 11:
            print("paused before publishing shard 11", flush=True)
            sys.stdin.readline()
    publish(src, dst)

os.replace = replace
cache = EmbeddingCache(sys.argv[1], "model-x", 8)
for i in range(0, 550, 50):
    keys = cache.keys([f"text number {j}" for j in range(i, i + 50)])
    raw = np.frombuffer(keys.tobytes(), dtype=np.uint8).reshape(len(keys), 32)
    cache.add(keys, raw[:, :8].astype(np.float32))
"""


def test_killed_writer_leaves_a_consistent_cache(tmp_path: Path, repo_root: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)],
        cwd=repo_root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "paused before publishing shard 11"
        os.kill(proc.pid, signal.SIGKILL)  # mid-write: between the two files of a shard
    finally:
        proc.wait(timeout=30)
    cache = EmbeddingCache(tmp_path, "model-x", DIM)
    assert len(cache.shard_names()) == 10  # shards 1-10 published, the 11th is not
    assert len(list(cache.dir.glob("shard-*.vecs.npy"))) == 11  # its vectors were
    assert list(cache.dir.glob(".*.tmp"))  # and its keys lie in a temporary file
    query = cache.keys(texts(0, 1000))
    found, vecs = cache.lookup(query)
    # Every published shard is complete and correct; nothing beyond is half-visible.
    assert found[:500].all()
    assert not found[500:].any()
    np.testing.assert_array_equal(vecs[found], vectors_for(query[found]))
    # The next writer adds the lost texts again and finds them.
    lost = cache.keys(texts(500, 550))
    cache.add(lost, vectors_for(lost))
    assert cache.lookup(lost)[0].all()


def test_compaction_merges_shards_and_dedupes(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "model-x", DIM)
    for start in range(0, 100, 20):
        keys = cache.keys(texts(start, start + 30))  # overlapping: duplicates across shards
        cache.add(keys, vectors_for(keys))
    assert len(cache.shard_names()) == 5
    assert not cache.compact(max_shards=5)
    assert cache.compact(max_shards=2)
    assert len(cache.shard_names()) == 1
    query = cache.keys(texts(0, 110))
    found, vecs = cache.lookup(query)
    assert found.all()
    np.testing.assert_array_equal(vecs, vectors_for(query))
    merged = np.load(next(cache.dir.glob("shard-*.keys.npy")))
    assert len(merged) == len(np.unique(merged)) == 110


def _write_range(root: str, start: int) -> None:
    cache = EmbeddingCache(root, "model-x", DIM)
    for s in range(start, start + 200, 10):
        keys = cache.keys(texts(s, s + 10))
        cache.add(keys, vectors_for(keys))
        cache.compact(max_shards=4)


def test_concurrent_writers_and_compactions(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_range, args=(str(tmp_path), s)) for s in (0, 200)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = EmbeddingCache(tmp_path, "model-x", DIM)
    query = cache.keys(texts(0, 400))
    found, vecs = cache.lookup(query)
    assert found.all()
    np.testing.assert_array_equal(vecs, vectors_for(query))


def test_settings_validation_and_empty_input() -> None:
    from pipeline.config import compose

    settings = EmbedSettings.from_cfg(compose()["embed"])
    assert settings.dim == 384 and settings.backend == "onnx"
    with pytest.raises(UserInputError, match=r"embed\.backend"):
        EmbedSettings.from_cfg({"backend": "tensorflow"})
    with pytest.raises(UserInputError, match=r"embed\.text"):
        EmbedSettings.from_cfg({"text": "response"})
    with pytest.raises(UserInputError, match=r"embed\.precision"):
        EmbedSettings.from_cfg({"precision": "fp8"})
    empty = embed_texts([], settings)
    assert empty.shape == (0, 384) and empty.dtype == np.float32
