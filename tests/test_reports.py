"""Stage reports: the DVC metric file keeps quality and counts, the timings, run ids and
hashes go beside it; `pipeline summary` reads both, and says plainly when the model loses to
its baseline. (Two dedup runs writing the same metric file: tests/test_dedup_stage.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.cli import main
from pipeline.io.reports import split_report, write_report
from pipeline.stages import summaries

METRICS = {
    "macro_f1": 0.930,
    "baseline_macro_f1": 0.981,
    "accuracy": 0.95,
    "ece": 0.02,
    "timing": {"inference_samples_per_s": 120.0},
    "champion": {
        "promoted": False,
        "reason": "macro-F1 0.9300 does not beat the TF-IDF baseline's 0.9810",
    },
}


def test_a_model_that_loses_to_its_baseline_is_said_so() -> None:
    text = summaries.evaluate(METRICS)
    assert "the model LOSES to the TF-IDF baseline (0.9300 vs 0.9810): not promoted" in text
    assert "champion:" not in text  # the gate's reason would say the same again
    won = {**METRICS, "macro_f1": 0.99, "champion": {"promoted": True, "reason": "r"}}
    assert "LOSES" not in summaries.evaluate(won)
    assert "champion: promoted (r)" in summaries.evaluate(won)


def test_summary_reads_the_metric_file_and_the_timings_beside_it(tmp_path: Path, capsys) -> None:
    write_report(tmp_path / "reports", "metrics.json", METRICS)
    assert main(["summary", "--root", str(tmp_path)]) == 0  # no params.yaml: reports/
    out = capsys.readouterr().out
    assert "120.0 samples/s" in out and "LOSES to the TF-IDF baseline" in out
    # A fresh clone has the metric files (git) without this run's timings: still a summary.
    shutil.rmtree(tmp_path / "reports" / "run")
    assert main(["summary", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test macro-F1 0.9300 (baseline 0.9810), accuracy 0.9500, ECE 0.0200\n" in out


def test_split_report_keeps_quality_and_counts_in_the_metric_file() -> None:
    report = {"macro_f1": 0.9, "n_test": 10, "timing": {"inference_seconds": 1.5}}
    stable, facts = split_report("metrics.json", report)
    assert stable == {"macro_f1": 0.9, "n_test": 10}
    assert facts == {"timing": {"inference_seconds": 1.5}}
    assert split_report("other.json", report) == (report, {})


def test_a_tie_with_the_baseline_is_not_called_a_win_or_a_loss() -> None:
    tie = {**METRICS, "macro_f1": 0.981, "champion": {"promoted": False, "reason": "r"}}
    text = summaries.evaluate(tie)
    assert "only TIES the TF-IDF baseline (0.9810): not promoted" in text
    assert "LOSES" not in text
