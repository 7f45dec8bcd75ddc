"""`embed.engine=ray`: the index stage's embedding on a real local Ray cluster gives the same
vectors, cache and FAISS index as the local engine; a fully cached run starts no Ray; a
wrong address or a failing worker is a clear error."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers.processes import ray_children
from helpers.search import records_table
from helpers.store import write_records_store

from pipeline.cli import main
from pipeline.config import compose, to_yaml
from pipeline.embed import EmbedSettings
from pipeline.embed.api import encoder_id
from pipeline.embed.cache import EmbeddingCache
from pipeline.embed.onnx_export import ensure_onnx
from pipeline.errors import UserInputError
from pipeline.ray_cluster import PASSED_ENV, cluster
from pipeline.stages.index import kept_texts, run

REPO = Path(__file__).resolve().parent.parent


def _dead_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ONNX export made once (torch, ~30 s), copied into each project's cache."""
    cache = tmp_path_factory.mktemp("export")
    ensure_onnx("all-MiniLM-L6-v2", cache)
    return cache / "onnx"


def _project(root: Path, dedup_dir: Path, onnx: Path | None) -> Path:
    """A project whose kept records are `dedup_dir`'s, its embedding cache holding only the
    export (no vectors)."""
    shutil.copytree(dedup_dir, root / "data" / "dedup")
    if onnx is not None:
        shutil.copytree(onnx, root / "data" / "cache" / "embeddings" / "onnx")
    (root / "params.yaml").write_text(to_yaml(compose()), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def small_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kept records of a few short prompts (enough to need encoding)."""
    out = tmp_path_factory.mktemp("small") / "dedup"
    out.mkdir()
    table = records_table(40)
    pq.write_table(table, out / "records.parquet")
    write_records_store(out / "store.duckdb", table)
    return out


@pytest.fixture(scope="module")
def sample_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample through the dedup stage (local engine): the index stage's input."""
    from pipeline.stages.dedup import run as dedup

    sample = REPO / "data" / "raw"
    if not any(sample.glob("*")):
        pytest.skip("the bundled sample is absent (python -m pipeline.sample)")
    root = tmp_path_factory.mktemp("sample")
    mlflow = f"sqlite:///{root / 'mlflow.db'}"
    cfg = compose(["data=sample", f"tracking.uri={mlflow}", "dedup.semantic.enabled=false"])
    cfg.data.path = str(sample)
    dedup(cfg, root)
    return root / "data" / "dedup"


def test_config_errors() -> None:
    cfg = compose(["embed.engine=spark"])
    with pytest.raises(UserInputError, match=r"embed\.engine 'spark'"):
        EmbedSettings.from_cfg(cfg.embed)
    with pytest.raises(UserInputError, match=r"embed\.backend to onnx"):
        EmbedSettings.from_cfg(compose(["embed.engine=ray", "embed.backend=torch"]).embed)
    with pytest.raises(UserInputError, match=r"embed\.ray: unknown key\(s\) worker"):
        EmbedSettings.from_cfg({**compose().embed, "ray": {"worker": 2}})
    with pytest.raises(UserInputError, match=r"embed\.ray\.workers=0"):
        EmbedSettings.from_cfg(compose(["embed.ray.workers=0"]).embed)
    with pytest.raises(UserInputError, match=r"embed\.ray\.object_store_memory"):
        EmbedSettings.from_cfg(compose(["embed.ray.object_store_memory=lots"]).embed)
    settings = EmbedSettings.from_cfg(compose(["embed.engine=ray", "embed.ray.workers=3"]).embed)
    assert settings.ray.workers == 3 and settings.ray.cpus == 3
    assert settings.ray.object_store_memory == 500 * 10**6
    # The engine does not name the vectors: both engines read and write the same cache.
    local = EmbedSettings.from_cfg(compose().embed)
    assert encoder_id(settings) == encoder_id(local)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:{port}", "no Ray cluster answers there"),
        ("not-an-address", "expected host:port, ray://host:port or auto"),
    ],
)
def test_bad_address_is_a_config_error(
    tmp_path: Path,
    small_records: Path,
    capsys: pytest.CaptureFixture[str],
    address: str,
    message: str,
) -> None:
    # No export in the cache: the address is checked before minutes of exporting.
    root = _project(tmp_path, small_records, onnx=None)
    address = address.format(port=_dead_port())
    rc = main(["index", "build", "--root", str(root), "-S", "embed.engine=ray",
               "-S", f"embed.ray.address={address}"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"embed.ray.address={address!r}" in err and message in err
    assert not (root / "data" / "index").exists()
    assert not (root / "data" / "cache" / "embeddings" / "onnx").exists()
    assert not ray_children()


@pytest.mark.slow
def test_a_failing_worker_is_a_clear_error(
    tmp_path: Path, small_records: Path, onnx_export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, small_records, onnx_export)
    # A corrupt export: every actor fails to build its ONNX session.
    model = next((root / "data" / "cache" / "embeddings" / "onnx").glob("*/model.onnx"))
    model.write_bytes(b"not an onnx graph")
    rc = main(["index", "build", "--root", str(root), "-S", "embed.engine=ray",
               "-S", "embed.ray.workers=1"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "embed.engine=ray: encoding failed on the Ray workers after 0 of 40 texts" in err
    assert "protobuf" in err.lower()  # the worker's own error, not just "actor died"
    assert not (root / "data" / "index").exists()
    assert not ray_children()


@pytest.mark.slow
def test_sample_index_same_as_local_engine_then_cached_run_starts_no_ray(
    tmp_path: Path, sample_records: Path, onnx_export: Path
) -> None:
    local_root = _project(tmp_path / "local", sample_records, onnx_export)
    ray_root = _project(tmp_path / "ray", sample_records, onnx_export)
    local = run(compose(), local_root)
    # Two workers, batches smaller than the sample, and cache shards flushed mid-run.
    ray = run(compose(["embed.engine=ray", "embed.ray.workers=2", "embed.ray.batch_texts=256",
                       "embed.flush_every=500"]), ray_root)  # fmt: skip
    assert not ray_children()
    assert local["records"] == ray["records"] > 1000
    assert (local["factory"], local["recall_at_10"]) == (ray["factory"], ray["recall_at_10"])

    idx_l, idx_r = local_root / "data" / "index", ray_root / "data" / "index"
    assert np.array_equal(np.load(idx_l / "rids.npy"), np.load(idx_r / "rids.npy"))
    vec_l, vec_r = np.load(idx_l / "vectors.npy"), np.load(idx_r / "vectors.npy")
    assert vec_l.shape == vec_r.shape and vec_l.dtype == vec_r.dtype == np.float32
    np.testing.assert_allclose(vec_r, vec_l, atol=1e-5)
    assert np.einsum("ij,ij->i", vec_l, vec_r).min() > 0.99999
    faiss_l = faiss.read_index(str(idx_l / "index.faiss"))
    faiss_r = faiss.read_index(str(idx_r / "index.faiss"))
    ids_l = faiss.vector_to_array(faiss_l.id_map)
    assert np.array_equal(ids_l, faiss.vector_to_array(faiss_r.id_map))
    assert np.array_equal(ids_l, np.load(idx_l / "rids.npy"))
    # The same neighbours for queries taken from the collection.
    queries = vec_l[:: max(1, len(vec_l) // 50)]
    assert np.array_equal(faiss_l.search(queries, 10)[1], faiss_r.search(queries, 10)[1])

    # The cache is the source of truth: every indexed vector is in it, as the driver wrote it.
    settings = EmbedSettings.from_cfg(compose().embed)
    _, texts, _ = kept_texts(ray_root / "data" / "dedup" / "records.parquet", settings)
    cache = EmbeddingCache(ray_root / "data" / "cache" / "embeddings", encoder_id(settings), 384)
    found, cached = cache.lookup(cache.keys(texts))
    assert found.all() and np.array_equal(cached, vec_r)
    assert len(cache.shard_names()) > 1  # flushed every 500 vectors, as the local path does

    # Everything cached: a run with a dead address succeeds, so it never joined a cluster,
    # and Ray is not even imported (a fresh process).
    code = (
        "import sys; from pipeline.cli import main; "
        f"rc = main(['index', 'build', '--root', {str(ray_root)!r}, '-S', 'embed.engine=ray', "
        f"'-S', 'embed.ray.address=127.0.0.1:{_dead_port()}']); "
        "print(rc, 'ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         timeout=600)  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == "0 False", out.stderr[-2000:]
    assert np.array_equal(np.load(idx_r / "vectors.npy"), vec_r)


@pytest.mark.slow
def test_joins_a_running_cluster_by_address_and_its_workers_run_offline(
    tmp_path: Path, small_records: Path, onnx_export: Path
) -> None:
    # A cluster started apart (`ray start`), without the offline variables in its
    # environment, in its own temp dir (so no other Ray user on the machine finds it).
    port = _dead_port()
    temp = Path(tempfile.mkdtemp(prefix="rayt", dir="/tmp"))  # Ray's socket paths are short
    env = {k: v for k, v in os.environ.items() if k not in PASSED_ENV and k != "RAY_ADDRESS"}
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
         f"--port={port}", "--num-cpus=2", "--object-store-memory=300000000",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.monotonic() < deadline, "ray start failed"
                time.sleep(1)
        address = f"127.0.0.1:{port}"
        with cluster(address, 1, 1, "embed.engine") as ray:

            @ray.remote
            def environment() -> dict[str, str | None]:
                return {k: os.environ.get(k) for k in PASSED_ENV}

            assert ray.get(environment.remote()) == {k: os.environ[k] for k in PASSED_ENV}

        root = _project(tmp_path / "ray", small_records, onnx_export)
        report = run(compose(["embed.engine=ray", f"embed.ray.address={address}"]), root)
        assert report["records"] == 40
        assert head.poll() is None  # joined, not started: the run leaves the cluster up
        local = _project(tmp_path / "local", small_records, onnx_export)
        run(compose(), local)
        np.testing.assert_allclose(
            np.load(root / "data" / "index" / "vectors.npy"),
            np.load(local / "data" / "index" / "vectors.npy"),
            atol=1e-5,
        )
    finally:
        head.terminate()  # `ray start --block` stops the processes it started
        head.wait(timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
