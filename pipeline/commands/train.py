"""`pipeline train`: split the kept records and train a model (the DVC `train` stage)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.commands.options import add_config_options, load_config


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand (imports nothing heavy)."""
    parser = sub.add_parser(
        "train",
        help="leakage-free split + Lightning training, tracked in MLflow",
        description="Split data/dedup/records.parquet into train/val/test without leakage, "
        "train the configured model (params.yaml `model`, `trainer`, ...) and publish "
        "models/ (best.ckpt, meta.json, split.parquet) and reports/train.json. "
        "Example: pipeline train -S model=finetune -S trainer.max_epochs=5",
    )
    add_config_options(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.stages.summaries import train as summary
    from pipeline.stages.train import run

    report = run(load_config(args), Path(args.root))
    if report:  # DDP worker processes (rank > 0) return {} and stay silent
        emit(report, args.json, summary(report))
    return 0
