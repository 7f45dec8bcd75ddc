"""`pipeline train`: split the kept records and train a model (the DVC `train` stage)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand (imports nothing heavy)."""
    parser = sub.add_parser(
        "train",
        help="leakage-free split + Lightning training, tracked in MLflow",
        description="Split data/dedup/records.parquet into train/val/test without leakage, "
        "train the configured model (params.yaml `model`, `trainer`, ...) and publish "
        "models/ (best.ckpt, meta.json, split.parquet) and reports/train.json. "
        "Example: pipeline train --set model.batch_size=32 --set trainer.max_epochs=5",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of params.yaml"
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a dotted override of params.yaml (repeatable); an unknown key is an error",
    )
    parser.add_argument("--params", default="params.yaml", help="composed parameters file")
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.config import load_params
    from pipeline.stages.train import run, summary

    root = Path(args.root)
    report = run(load_params(root / args.params, [*args.overrides, *args.sets]), root)
    if report:  # DDP worker processes (rank > 0) return {} and stay silent
        emit(report, args.json, summary(report))
    return 0
