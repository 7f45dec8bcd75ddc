"""`pipeline summary`: what the last pipeline run produced and where to look next."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.cli import emit
from pipeline.commands.options import add_config_options, config_path

NEXT_STEPS = (
    "source .venv/bin/activate                           # puts pipeline, dvc and mlflow on PATH",
    "pipeline runs                                       # model runs ranked by test macro-F1",
    "mlflow ui --backend-store-uri sqlite:///mlflow.db   # compare runs at http://127.0.0.1:5000",
    'pipeline search "how do I reset my password" --mode hybrid -k 5',
    'pipeline search "refund" --filter label=support --filter "quality>=4" --json',
    "pipeline records stats",
    "dvc exp run -S model=finetune && dvc exp show        # another experiment, side by side",
    "pipeline keys create --role reader && pipeline serve  # the same search over HTTP",
    "pipeline records disagreements                      # given labels the champion disputes",
    'pipeline predict "How do I get a refund for a damaged parcel?"   # the champion, ONNX',
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("summary", help="summarise the last run and suggest next steps")
    add_config_options(parser)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(func=run)


def collect(reports_dir: Path) -> dict[str, Any]:
    """Read each stage's report that exists."""
    from pipeline.io.reports import read_report
    from pipeline.stages.summaries import STAGES

    found: dict[str, Any] = {}
    for stage, (name, _) in STAGES.items():
        report = read_report(reports_dir, name)  # the metric file and this run's timings
        if report is not None:
            found[stage] = report
    return found


def _line(stage: str, report: dict[str, Any]) -> str:
    from pipeline.stages.summaries import STAGES

    try:
        text = STAGES[stage][1](report)
    except (KeyError, TypeError):  # a report written by another version of the stage
        text = f"(reports/{STAGES[stage][0]} lacks the expected fields: re-run the stage)"
    width = max(map(len, STAGES)) + 1  # the stage names line up in one column
    return f"  {stage:<{width}}" + text.replace("\n", "\n" + " " * (width + 2))


def run(args: argparse.Namespace) -> int:
    reports = collect(config_path(args, "paths.reports", "reports"))
    text = ["Pipeline outputs:"]
    text += [_line(stage, report) for stage, report in reports.items()]
    if not reports:
        text.append("  (no reports yet: run `dvc repro`)")
    text += ["", "Next:"] + [f"  {step}" for step in NEXT_STEPS]
    emit({"reports": reports, "next": list(NEXT_STEPS)}, args.json, "\n".join(text))
    return 0
