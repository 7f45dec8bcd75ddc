"""The DVC metric files (reports/*.json) change only when the stage's result changes: two runs
on the same inputs write byte-identical files; timings, run ids and hashes go beside them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_dedup_stage import TINY, make_cfg, write_jsonl

from pipeline.io.reports import RUN_DIR, VOLATILE, read_report, split_report


def test_split_report_keeps_quality_and_counts_in_the_metric_file() -> None:
    report = {"macro_f1": 0.9, "n_test": 10, "timing": {"inference_seconds": 1.5}}
    stable, facts = split_report("metrics.json", report)
    assert stable == {"macro_f1": 0.9, "n_test": 10}
    assert facts == {"timing": {"inference_seconds": 1.5}}
    assert split_report("other.json", report) == (report, {})


@pytest.mark.slow
def test_dedup_twice_writes_the_same_metric_file(tmp_path: Path) -> None:
    from pipeline.stages.dedup import run

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
