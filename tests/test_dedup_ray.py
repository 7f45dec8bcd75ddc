"""`dedup.engine=ray`: the same store and records.parquet as the local engine, on a real local
Ray cluster (started and shut down by each run), on the bundled sample and on t0-prompts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from helpers.processes import ray_children

from pipeline.config import compose
from pipeline.errors import UserInputError
from pipeline.stages.dedup import run
from pipeline.store.records import TABLES

REPO = Path(__file__).resolve().parent.parent
# Every field the two engines must agree on; `meta` only differs in nothing (same params
# except the engine, which is part of them, so it is left out).
VOLATILE_REPORT = {"seconds", "run_id", "run_dir"}


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _run(root: Path, mlflow_uri: str, data: str, path: Path, *overrides: str) -> dict:
    cfg = compose([f"data={data}", f"tracking.uri={mlflow_uri}", *overrides])
    cfg.data.path = str(path)
    report = run(cfg, root)
    assert report["accounting"]["holds"], report["accounting"]
    return report


def _store(path: Path) -> dict[str, list]:
    """Every published table, rows in their stored order (the engines must agree on it)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f"SELECT * FROM {t}").fetchall() for t in TABLES}
    finally:
        con.close()


def _same_outputs(local: Path, ray: Path, local_report: dict, ray_report: dict) -> None:
    out_l, out_r = local / "data" / "dedup", ray / "data" / "dedup"
    store_l, store_r = _store(out_l / "store.duckdb"), _store(out_r / "store.duckdb")
    for table in TABLES:
        assert store_l[table] == store_r[table], table
    assert pq.read_table(out_l / "records.parquet").equals(pq.read_table(out_r / "records.parquet"))
    strip = {k: v for k, v in local_report.items() if k not in VOLATILE_REPORT}
    assert strip == {k: v for k, v in ray_report.items() if k not in VOLATILE_REPORT}


def test_engine_config_errors() -> None:
    cfg = compose(["dedup.engine=spark"])
    with pytest.raises(UserInputError, match=r"dedup\.engine='spark'"):
        run(cfg, Path("/nonexistent"))
    from pipeline.dedup.ray_engine import RaySettings

    with pytest.raises(UserInputError, match="num_cpus"):
        RaySettings.from_cfg({"num_cpus": 0})
    with pytest.raises(UserInputError, match="object_store_memory"):
        RaySettings.from_cfg({"object_store_memory": "lots"})
    with pytest.raises(UserInputError, match=r"dedup\.ray\.shuffle='pull'"):
        RaySettings.from_cfg({"shuffle": "pull"})
    with pytest.raises(UserInputError, match="unknown key"):
        RaySettings.from_cfg({"adress": "auto"})
    assert RaySettings.from_cfg({"object_store_memory": "1.5GB"}).object_store_memory == 15 * 10**8


def test_steps_not_on_ray_and_encrypted_stores_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.dedup.ray_engine import RaySettings, check_steps, cluster
    from pipeline.dedup.steps import Step, build_steps

    class Counting(Step):  # keeps state while streaming: cannot run on the workers
        def observe(self, batch: object, start: int) -> None:
            pass

    steps = dict(build_steps(compose([]).dedup))
    check_steps(steps)  # quality, exact, near on Ray; semantic on the driver
    with pytest.raises(UserInputError, match=r"'count'.*not on ray yet"):
        check_steps({**steps, "count": Counting()})
    monkeypatch.setenv("PIPELINE_DB_KEY", "k" * 32)
    with pytest.raises(UserInputError, match="encrypted"), cluster(RaySettings()):
        pass
    assert not ray_children()


def test_ray_is_imported_only_by_the_ray_engine() -> None:
    code = (
        "import sys, pipeline.cli, pipeline.stages.dedup, pipeline.dedup.ray_engine, "
        "pipeline.dedup.ray_ops, pipeline.api.app\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO)  # fmt: skip
    assert out.stdout.strip() == "[]"


# Beside the sample: records the quality filters drop, secrets, a reused id, a chain of
# near duplicates (a~b~c, where c's Jaccard to the survivor a is its own).
EXTRA = [
    {"id": "x-sym", "prompt": "#### $$$$ %%%% @@@@ &&&& ****", "response": "ok"},
    {"id": "x-lines", "prompt": "same line\nsame line\nsame line\nsame line\nother",
     "response": "fine"},
    {"id": "x-key", "prompt": "my key is AKIAIOSFODNN7EXAMPLE, and password=hunter2hunter2",
     "response": "rotate it, mail sec@example.com"},
    {"id": "x-key", "prompt": "a second record with the same id", "response": "rejected"},
    *({"id": f"x-chain-{i}", "response": "ok",
       "prompt": " ".join(f"w{j}" for j in range(i, 60 + i))} for i in range(4)),
    # A long chain, each record two words on from the last (Jaccard ~0.93 to the next, below
    # 0.8 beyond three steps), in scrambled input order: its components need several
    # large-star / small-star rounds (tests/test_dedup_ray_components.py counts them).
    *({"id": f"x-long-{i}", "response": "fine",
       "prompt": " ".join(f"v{j}" for j in range(2 * i, 60 + 2 * i))}
      for i in (7, 3, 19, 0, 11, 24, 5, 16, 1, 22, 9, 13, 2, 20, 6, 17, 10, 23, 4, 14, 8, 21,
                12, 18, 15)),
]  # fmt: skip


def _hostile_inputs(raw: Path) -> None:
    """Beside the sample's files (JSON Lines, gzipped JSON Lines, a JSON array, CSV,
    Parquet): EXTRA and, in one file read as several byte ranges, a malformed line, blank
    lines, CRLF and lone CR line breaks, rows with no id (their id is file:line), an id the
    sample used in another file and an id used twice across ranges; every conversation and
    preference shape; a gzip and a Parquet file that cannot be read."""
    from test_shapes_stage import HOSTILE, MIXED

    lines = [json.dumps(r) for r in EXTRA]
    lines += ['{"id": "broken", "prompt": "an unfinished line', "", "   ",
              json.dumps({"prompt": "a row with no id", "response": "its id is its line"}),
              json.dumps({"id": "r00027", "prompt": "an id annotators.jsonl used first",
                          "response": "rejected"})]  # fmt: skip
    text = "\n".join(lines) + "\r\n"
    filler = (json.dumps({"id": f"x-fill-{i}", "response": "fine",
                          "prompt": f"filler {i}: " + " ".join(f"t{i}w{j}" for j in range(60))})
              for i in range(150))  # fmt: skip
    text += "\r".join(filler) + "\n"
    text += json.dumps({"prompt": "another row with no id", "response": "x"}) + "\n"
    text += json.dumps({"id": "x-key", "prompt": "x-key, a third time", "response": "no"}) + "\n"
    (raw / "extra.jsonl").write_bytes(text.encode("utf-8"))
    (raw / "shapes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in MIXED + HOSTILE))
    (raw / "unreadable.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00garbage, not deflate")
    (raw / "unreadable.parquet").write_bytes(b"PAR1 not a parquet file PAR1")


@pytest.mark.slow  # a Ray cluster and the stage twice: about 3 minutes on 2 cores
def test_sample_same_as_local_engine(
    tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.dedup import ray_read

    sample = REPO / "data" / "raw"
    if not any(sample.glob("*")):
        pytest.skip("the bundled sample is absent (python -m pipeline.sample)")
    raw = tmp_path / "raw"
    shutil.copytree(sample, raw)
    _hostile_inputs(raw)
    # Small byte ranges: the sample's JSON Lines files and extra.jsonl are read in pieces.
    monkeypatch.setattr(ray_read, "RANGE_BYTES", 32 * 1024)
    units = ray_read.plan_units([(p, p.name) for p in sorted(raw.iterdir())])
    assert sum(u["rel"] == "extra.jsonl" for u in units) >= 2
    # Semantic dedup runs on the driver in both engines (it keeps nothing while streaming);
    # off here so the test does not load the encoder.
    common = ("dedup.semantic.enabled=false", "dedup.ray.num_cpus=2",
              "dedup.ray.object_store_memory=1GB")  # fmt: skip
    local = _run(tmp_path / "local", mlflow_uri, "sample", raw, *common)
    ray = _run(tmp_path / "ray", mlflow_uri, "sample", raw, "dedup.engine=ray", *common)
    assert local["exact_duplicates"] > 0 and local["near_duplicates"] > 0
    assert local["rejected"]["total"] > 0 and local["filtered"]["total"] > 0
    assert local["pii"]["total"] > 0 and local["secrets"]["total"] > 0
    _same_outputs(tmp_path / "local", tmp_path / "ray", local, ray)
    con = duckdb.connect(str(tmp_path / "ray" / "data" / "dedup" / "store.duckdb"), True)
    chain = con.execute("SELECT DISTINCT duplicate_of, method FROM duplicates "
                        "WHERE id LIKE 'x-long-%'").fetchall()  # fmt: skip
    dropped = con.execute("SELECT count(*) FROM duplicates WHERE id LIKE 'x-long-%'").fetchone()
    rejected = con.execute(
        "SELECT file, line, reason, detail FROM rejected "
        "WHERE file LIKE 'extra%' OR file LIKE 'unreadable%'"
    ).fetchall()
    ids = con.execute("SELECT id FROM records WHERE id LIKE 'extra.jsonl:%'").fetchall()
    con.close()
    assert len(chain) == 1 and chain[0][1] == "near" and dropped == (24,)  # one cluster of 25
    reasons = {(file, reason) for file, _, reason, _ in rejected}
    assert {("extra.jsonl", "invalid_json"), ("extra.jsonl", "duplicate_id"),
            ("unreadable.jsonl.gz", "read_error"),
            ("unreadable.parquet", "read_error")} <= reasons  # fmt: skip
    # The id first used in another file, and the one used again in a later byte range.
    assert any("'r00027' already used at annotators.jsonl:" in d for *_, d in rejected)
    assert sum("'x-key' already used at extra.jsonl:3" in d for *_, d in rejected) == 2
    assert len(ids) == 2  # rows without an id: named by their line, the same in both engines
    assert not ray_children()


@pytest.mark.slow
@pytest.mark.shared_data
def test_t0_prompts_same_as_local_engine(
    tmp_path: Path, mlflow_uri: str, t0_prompts_path: Path
) -> None:
    # All 55,185 records of t0-prompts (the whole file: it has fewer than 100k).
    common = ("dedup.semantic.enabled=false",)
    local = _run(tmp_path / "local", mlflow_uri, "t0_prompts", t0_prompts_path, *common)
    ray = _run(tmp_path / "ray", mlflow_uri, "t0_prompts", t0_prompts_path,
               "dedup.engine=ray", *common)  # fmt: skip
    assert local["input_records"] == 55_185 and local["exact_duplicates"] == 1_153
    assert local["near_duplicates"] > 0
    _same_outputs(tmp_path / "local", tmp_path / "ray", local, ray)
    assert not ray_children()
    print(json.dumps({"local_seconds": local["seconds"], "ray_seconds": ray["seconds"]}))
