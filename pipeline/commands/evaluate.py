"""`pipeline evaluate`: score the trained model on the test split (the DVC `evaluate` stage)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand (imports nothing heavy)."""
    parser = sub.add_parser(
        "evaluate",
        help="test-set metrics, TF-IDF baseline, ONNX check, MLflow registry",
        description="Evaluate models/ on the test split: writes reports/metrics.json and "
        "reports/eval/, logs into the train run in MLflow and moves the `champion` alias "
        "only when test macro-F1 beats the current champion's.",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of params.yaml"
    )
    parser.add_argument("--params", default="params.yaml", help="composed parameters file")
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.config import load_params
    from pipeline.stages.evaluate import run, summary

    root = Path(args.root)
    result = run(load_params(root / args.params, args.overrides), root)
    emit(result, args.json, summary(result))
    return 0
