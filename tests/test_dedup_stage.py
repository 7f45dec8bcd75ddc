"""The dedup stage end to end on real DuckDB, Parquet and MLflow (sqlite) in tmp_path."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from helpers.wait import wait_until
from omegaconf import DictConfig

from pipeline.cli import main as cli_main
from pipeline.config import compose, to_yaml
from pipeline.errors import BusyError, NotFoundError
from pipeline.io.lock import exclusive
from pipeline.io.reports import RUN_DIR, VOLATILE, read_report
from pipeline.stages.dedup import run
from pipeline.store.records import TABLES, show

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def make_cfg(root: Path, data: str | Path, mlflow_uri: str, *overrides: str) -> DictConfig:
    """The project's real config, pointed at `data` and a tmp MLflow store."""
    cfg = compose([f"tracking.uri={mlflow_uri}", *overrides])
    cfg.data.path = str(data)
    (root / "params.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    return cfg


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


TINY = [
    {"id": "a", "prompt": "How do I reset my password?", "response": "Use the link.",
     "quality": 2, "user_id": "u1"},
    {"id": "b", "prompt": "how do I  RESET my password?", "response": "use the link.",
     "quality": 5, "user_id": "u2"},  # exact duplicate of a after normalisation; better quality
    {"id": "c", "prompt": "Mail me at jo@example.com", "response": "ok", "user_id": "gone"},
    "{broken",
    {"id": "d", "prompt": "", "response": "x"},
    {"id": "e", "prompt": "The quick brown fox jumps over the lazy dog near the river bank "
     "today and tomorrow and the day after", "response": "fine"},
    {"id": "f", "prompt": "The quick brown fox jumps over the lazy dog near the river bank "
     "today and tomorrow and the day after that", "response": "fine"},
]  # fmt: skip


def store_contents(path: Path) -> dict[str, list]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in (*TABLES, "meta")
        }
    finally:
        con.close()


def test_tiny_dataset_accounting_duplicates_erasure_and_pii(
    tmp_path: Path, mlflow_uri: str
) -> None:
    write_jsonl(tmp_path / "raw" / "a.jsonl", TINY)
    (tmp_path / "data").mkdir()
    erased = hashlib.sha256(b"gone").hexdigest()
    (tmp_path / "data" / "erasures.txt").write_text(f"# erased\n{erased}\n")
    cfg = make_cfg(tmp_path, tmp_path / "raw", mlflow_uri, "dedup.near.threshold=0.7")
    report = run(cfg, tmp_path)

    assert report["input_records"] == 7
    assert report["rejected"] == {"total": 2, "by_reason": {"empty_prompt": 1, "invalid_json": 1}}
    assert (report["exact_duplicates"], report["near_duplicates"], report["erased"]) == (1, 1, 1)
    assert report["kept"] == 2 and report["accounting"]["holds"]
    assert read_report(tmp_path / "reports", "dedup.json") == report

    store = tmp_path / "data" / "dedup" / "store.duckdb"
    a = show(store, "a")
    assert a["status"] == "duplicate" and a["record"]["duplicate_of"] == "b"  # quality wins
    assert a["record"]["method"] == "exact" and a["record"]["similarity"] == 1.0
    assert a["kept_as"] == "b"
    b = show(store, "b")
    assert b["status"] == "kept" and [d["id"] for d in b["duplicates"]] == ["a"]
    assert show(store, "f")["record"]["method"] == "near"  # e came first and ties otherwise
    assert show(store, "a.jsonl:4")["rejected"][0]["reason"] == "invalid_json"
    with pytest.raises(NotFoundError):
        show(store, "c")  # erased: in no table
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT count(*) FROM records").fetchone()[0] == 2
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    con.close()
    assert meta["data_hash"] == report["data_hash"]

    from mlflow.tracking import MlflowClient

    runs = MlflowClient(mlflow_uri).search_runs(
        [MlflowClient(mlflow_uri).get_experiment_by_name("prompt-pipeline-curation").experiment_id],
        filter_string=f"tags.data_hash = '{report['data_hash']}'",
    )
    assert runs and runs[0].data.metrics["kept"] == 2
    assert {"git_commit", "pipeline_run", "stage", "mlflow.note.content"} <= set(runs[0].data.tags)
    # The run spans the stage: its duration is the stage's, not the logging's few ms.
    info = runs[0].info
    assert (info.end_time - info.start_time) / 1000 == pytest.approx(
        report["seconds"]["total"], abs=0.002
    )
    assert runs[0].data.metrics["time.total_seconds"] == report["seconds"]["total"]


def test_pii_is_redacted_in_records_and_counted(tmp_path: Path, mlflow_uri: str) -> None:
    write_jsonl(
        tmp_path / "raw" / "a.jsonl",
        [{"id": "p", "prompt": "write to jo@example.com please", "response": "ok"}, "{jo@x.org"],
    )
    report = run(make_cfg(tmp_path, tmp_path / "raw", mlflow_uri), tmp_path)
    assert report["pii"]["by_type"] == {"email": 1}
    store = tmp_path / "data" / "dedup" / "store.duckdb"
    shown = show(store, "p")
    assert "jo@example.com" not in shown["record"]["prompt"]
    assert shown["pii"] == [{"field": "prompt", "pii_type": "email", "count": 1}]
    assert "jo@x.org" not in show(store, "a.jsonl:2")["rejected"][0]["raw"]


def test_rerun_is_byte_identical(tmp_path: Path, mlflow_uri: str) -> None:
    write_jsonl(tmp_path / "raw" / "a.jsonl", TINY)
    cfg = make_cfg(tmp_path, tmp_path / "raw", mlflow_uri)
    out = tmp_path / "data" / "dedup"
    run(cfg, tmp_path)
    first = ((out / "records.parquet").read_bytes(), store_contents(out / "store.duckdb"))
    run(cfg, tmp_path)
    second = ((out / "records.parquet").read_bytes(), store_contents(out / "store.duckdb"))
    assert first == second
    assert not list((tmp_path / "data").glob(".dedup.*.tmp"))  # no temporary left behind


def test_second_writer_gets_busy_error(tmp_path: Path, mlflow_uri: str) -> None:
    write_jsonl(tmp_path / "raw" / "a.jsonl", TINY)
    cfg = make_cfg(tmp_path, tmp_path / "raw", mlflow_uri)
    # One lock over the published data: a running index build (or erase) blocks dedup too.
    with exclusive(tmp_path / "data" / ".writer.lock", "pipeline index build"):
        with pytest.raises(BusyError, match=f"`pipeline index build` \\(pid {os.getpid()}\\)"):
            run(cfg, tmp_path)
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", "dedup", "--root", str(tmp_path)],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
    assert proc.returncode == 4
    assert proc.stderr.startswith("error: ") and f"pid {os.getpid()}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_dedup_stats_and_show(
    tmp_path: Path, mlflow_uri: str, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    write_jsonl(tmp_path / "raw" / "a.jsonl", TINY)
    make_cfg(tmp_path, tmp_path / "raw", mlflow_uri)
    assert cli_main(["records", "stats", "--root", str(tmp_path)]) == 3  # no store yet
    assert "no store yet" in capsys.readouterr().err
    args = ["dedup", "--root", str(tmp_path), "--set", "dedup.near.enabled=false", "--json"]
    assert cli_main(args) == 0
    assert json.loads(capsys.readouterr().out)["near_duplicates"] == 0
    assert cli_main(["records", "stats", "--root", str(tmp_path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["tables"]["records"] == 4 and stats["rejected_by_reason"]["invalid_json"] == 1
    assert cli_main(["records", "show", "a", "--root", str(tmp_path)]) == 0
    assert "status: duplicate" in capsys.readouterr().out
    assert cli_main(["records", "show", "zzz", "--root", str(tmp_path)]) == 3
    assert "record 'zzz'" in capsys.readouterr().err
    assert cli_main(["dedup", "--root", str(tmp_path), "--set", "dedup.nope=1"]) == 2


KILL_SCRIPT = """
import sys
from pathlib import Path
from omegaconf import OmegaConf
from pipeline.stages.dedup import run
run(OmegaConf.load(sys.argv[1]), Path(sys.argv[2]))
"""


@pytest.mark.slow
def test_kill_mid_stage_keeps_previous_outputs(tmp_path: Path, mlflow_uri: str) -> None:
    write_jsonl(tmp_path / "raw" / "a.jsonl", TINY)
    # No quality filters: the big input below repeats "word" 40 times, which they drop.
    cfg = make_cfg(tmp_path, tmp_path / "raw", mlflow_uri, "dedup.near.enabled=false",
                   "dedup.quality.enabled=false")  # fmt: skip
    out = tmp_path / "data" / "dedup"
    run(cfg, tmp_path)
    before = ((out / "records.parquet").read_bytes(), store_contents(out / "store.duckdb"))

    # A bigger input, so the second run is still writing when it is killed.
    write_jsonl(
        tmp_path / "raw" / "b.jsonl",
        [{"prompt": f"question {i} " + "word " * 40, "response": str(i)} for i in range(60_000)],
    )
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "params.yaml"), str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    wait_until(  # the write step began (or the stage ended: fail below)
        lambda: list((tmp_path / "data").glob(".dedup.*.tmp")) or proc.poll() is not None,
        "the stage to start writing",
        timeout=120,
    )
    assert proc.poll() is None, "stage ended before the kill"
    # A reader meanwhile sees the previous store.
    assert store_contents(out / "store.duckdb") == before[1]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ((out / "records.parquet").read_bytes(), store_contents(out / "store.duckdb")) == before
    report = run(cfg, tmp_path)
    assert report["kept"] == 60_004 and report["accounting"]["holds"]
    assert not list((tmp_path / "data").glob(".dedup.*.tmp"))


def test_exact_duplicate_of_a_near_duplicate_resolves_to_the_kept_record(
    tmp_path: Path, mlflow_uri: str
) -> None:
    text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    write_jsonl(
        tmp_path / "raw" / "a.jsonl",
        [
            {"id": "x1", "prompt": text, "quality": 1},
            {"id": "x2", "prompt": text.upper(), "quality": 2},
            {"id": "y", "prompt": text + " fifteen", "quality": 5},
        ],
    )
    report = run(make_cfg(tmp_path, tmp_path / "raw", mlflow_uri), tmp_path)
    assert (report["exact_duplicates"], report["near_duplicates"], report["kept"]) == (1, 1, 1)
    store = tmp_path / "data" / "dedup" / "store.duckdb"
    x1 = show(store, "x1")
    assert x1["record"]["duplicate_of"] == "x2" and x1["kept_as"] == "y"
    assert show(store, "x2")["record"]["method"] == "near"


@pytest.mark.slow
def test_dedup_twice_writes_the_same_metric_file(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "raw" / "a.jsonl", TINY)
    cfg = make_cfg(tmp_path, tmp_path / "raw", f"sqlite:///{tmp_path / 'mlflow.db'}")
    reports = tmp_path / "reports"
    first = run(cfg, tmp_path)
    metric_file = (reports / "dedup.json").read_bytes()
    timings = json.loads((reports / RUN_DIR / "dedup.json").read_text())
    assert set(timings) == set(VOLATILE["dedup.json"]) and "total" in timings["seconds"]
    assert not set(json.loads(metric_file)) & set(VOLATILE["dedup.json"])

    shutil.rmtree(tmp_path / "data" / "dedup")  # a rebuild from scratch, as `dvc repro` does
    second = run(cfg, tmp_path)
    assert (reports / "dedup.json").read_bytes() == metric_file
    assert read_report(reports, "dedup.json") == second
    assert second["kept"] == first["kept"]
