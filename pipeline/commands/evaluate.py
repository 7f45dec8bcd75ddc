"""`pipeline evaluate`: score the trained model on the test split (the DVC `evaluate` stage)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.commands.options import add_config_options, load_config


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand (imports nothing heavy)."""
    parser = sub.add_parser(
        "evaluate",
        help="test-set metrics, TF-IDF baseline, ONNX check, MLflow registry",
        description="Evaluate models/ on the test split: writes reports/metrics.json and "
        "reports/eval/, logs into the train run in MLflow and moves the `champion` alias "
        "only when test macro-F1 beats the current champion's.",
    )
    add_config_options(parser)
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.stages.evaluate import run
    from pipeline.stages.summaries import evaluate as summary

    result = run(load_config(args), Path(args.root))
    emit(result, args.json, summary(result))
    return 0
