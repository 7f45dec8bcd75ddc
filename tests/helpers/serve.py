"""Shared helpers of the service tests: a small real dedup store, records.parquet and params
in tmp_path (no tests here)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from helpers.wait import wait_until
from pipeline.api.state import ServiceConfig
from pipeline.record import RECORD_SCHEMA
from pipeline.service.settings import ServeSettings, ServicePaths
from pipeline.store.db import connect
from pipeline.store.schema import DDL

# (id, prompt, response, label, user_id, session_id, turn, source)
ROWS = [
    (
        "a1",
        "how do I reset my password",
        "click forgot password",
        "support",
        "alice",
        "sa",
        1,
        "app",
    ),
    ("a2", "it still does not work", "clear your cookies", "support", "alice", "sa", 2, "app"),
    ("m3", "a colleague joins the thread", "noted", "support", "mallory", "sa", 3, "app"),
    ("b1", "refund for a damaged parcel", "we will refund you", "billing", "bob", "sb", 1, "web"),
    ("b2", "what is the capital of france", "paris", "trivia", "bob", None, None, "web"),
    (
        "c1",
        "write a haiku about autumn leaves",
        "red leaves fall softly",
        "creative",
        "carol",
        None,
        None,
        "app",
    ),
    (
        "n1",
        "translate good morning to german",
        "guten morgen",
        "translate",
        None,
        None,
        None,
        "import",
    ),
]


def _rid(record_id: str) -> int:
    return 1000 + sum(ord(c) * 31**i for i, c in enumerate(record_id)) % 100000


def record_rows() -> list[dict]:
    out = []
    for line, (rid_s, prompt, response, label, user, session, turn, source) in enumerate(ROWS, 1):
        out.append(
            {
                "rid": _rid(rid_s), "id": rid_s, "prompt": prompt, "response": response,
                "label": label, "user_id": user, "session_id": session, "parent_id": None,
                "turn": turn, "created_at": datetime(2024, 5, line, tzinfo=UTC), "quality": None,
                "tags": ["t"], "origin": "real", "source": source,
                "metadata": json.dumps({"n": line}), "file": "raw.jsonl", "line": line,
            }
        )  # fmt: skip
    return out


def build_store(root: Path, extra: bool = False) -> ServiceConfig:
    """Write store.duckdb and records.parquet under root; return a config pointing at them.

    `extra` adds record z9, as a later `dvc repro` over new data would.
    """
    paths = ServicePaths().under(root)
    rows = record_rows()
    if extra:
        z9 = dict(rows[-1], id="z9", rid=_rid("z9"), prompt="where is the zebra crossing", line=99)
        rows.append(z9)
    table = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
    dup = dict(rows[0], rid=_rid("a1-dup"), id="a1-dup", line=99)
    other_dup = dict(rows[5], rid=_rid("n1-dup"), id="n1-dup", line=98)
    dups = pa.Table.from_pylist([dup, other_dup], schema=RECORD_SCHEMA)
    dups = dups.append_column("duplicate_of", pa.array(["a1", "n1"]))
    dups = dups.append_column("duplicate_of_rid", pa.array([_rid("a1"), _rid("n1")], pa.int64()))
    dups = dups.append_column("method", pa.array(["exact", "exact"]))
    dups = dups.append_column("similarity", pa.array([1.0, 1.0]))
    paths.store.parent.mkdir(parents=True, exist_ok=True)
    con = connect(paths.store, read_only=False)
    for statement in DDL:
        con.execute(statement)
    con.register("t", table)
    con.execute("INSERT INTO records SELECT * FROM t")
    con.register("d", dups)
    con.execute("INSERT INTO duplicates SELECT * FROM d")
    con.execute(
        "INSERT INTO preferences VALUES ('a1', 'good', 'bad', 'app'), ('n1', 'x', 'y', 'i')"
    )
    con.execute("INSERT INTO pii_redactions VALUES ('a2', 'prompt', 'email', 1)")
    con.execute(
        """INSERT INTO rejected (file, line, reason, detail, record_id, raw) VALUES
           ('raw.jsonl', 50, 'empty_prompt', 'prompt is empty', 'z',
            '{"user_id": "alice", "prompt": ""}'),
           ('raw.jsonl', 51, 'invalid_json', 'bad json', NULL, '{oops')"""
    )
    con.close()
    pq.write_table(table, paths.records)
    return ServiceConfig(
        serve=ServeSettings(reload_seconds=0.2, key_cache_seconds=0.2), paths=paths
    )


def write_params(config: ServiceConfig, root: Path) -> Path:
    """A params.yaml with the sections the service commands read, pointing into root."""
    from dataclasses import fields

    import yaml

    paths = {f.name: str(getattr(config.paths, f.name)) for f in fields(config.paths)}
    mlflow_db = config.paths.mlruns.parent / "mlflow.db"  # the artifacts live beside it
    del paths["mlruns"]
    params = {"paths": paths, "serve": {"port": 0}, "tracking": {"uri": f"sqlite:///{mlflow_db}"}}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def build_index(config: ServiceConfig, real_encoder: bool = False) -> dict:
    """Publish data/index over records.parquet: real FAISS and BM25 files.

    Fast tests use seeded unit vectors (keyword search needs no encoder); slow tests embed
    with the real model so vector and hybrid search mean something.
    """
    import numpy as np

    from pipeline.embed import EmbedSettings, embed_texts
    from pipeline.index.build import publish_index
    from pipeline.index.factory import IndexSettings

    table = pq.read_table(config.paths.records, columns=["rid", "prompt"])
    rids = table["rid"].to_numpy().astype(np.int64)
    texts = table["prompt"].to_pylist()
    embed = EmbedSettings()
    if real_encoder:
        from pipeline.embed.query import ensure_query_model

        vectors = embed_texts(texts, embed, cache_dir=config.paths.embed_cache)
        ensure_query_model(embed, config.paths.embed_cache)
    else:
        rng = np.random.default_rng(7)
        vectors = rng.standard_normal((len(texts), embed.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    encoder = {"model": embed.model, "dim": embed.dim, "backend": embed.backend}
    return publish_index(
        config.paths.index_dir, rids, vectors, texts, IndexSettings(factory="Flat"), encoder
    )


def start_serve(params: Path, cwd: Path) -> tuple[subprocess.Popen, str, Path]:
    """`pipeline serve --params PARAMS --port 0` as a child process, once it listens:
    (the process, its URL, its log file). The caller stops it (SIGINT)."""
    cmd = [sys.executable, "-m", "pipeline", "serve", "--params", str(params), "--port", "0"]
    return start_uvicorn(cmd, cwd, cwd / "server.log", "the server", timeout=120)


def start_uvicorn(
    cmd: list[str], cwd: Path, log: Path, what: str, timeout: float
) -> tuple[subprocess.Popen, str, Path]:
    """Any uvicorn server `cmd` (listening on port 0) as a child process, once it listens."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    running = re.compile(r"Uvicorn running on (https?://127\.0\.0\.1:\d+)")
    found = wait_until(
        lambda: running.search(log.read_text()) or proc.poll() is not None,
        f"{what} to start",
        timeout=timeout,
    )
    assert proc.poll() is None, f"{what} exited:\n{log.read_text()}"
    return proc, found.group(1), log


def stop_process(proc: subprocess.Popen) -> None:
    """SIGINT (a clean shutdown), then kill if it has not exited within 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
