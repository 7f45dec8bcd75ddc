"""`pipeline anomaly` (the DVC `anomaly` stage) and `pipeline records anomalies`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.commands.dedup import DEFAULT_STORE
from pipeline.commands.options import add_config_options, config_path, load_config, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `anomaly` subcommand (imports nothing heavy)."""
    parser = sub.add_parser(
        "anomaly",
        help="score every kept record's strangeness with an autoencoder (a DVC stage)",
        description="Embed the kept records (through the embedding cache), fit the "
        "autoencoder of params.yaml `anomaly`, and publish data/anomaly/scores.parquet "
        "(anomaly_score = reconstruction error, by record id) and reports/anomaly.json.",
    )
    add_config_options(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run)


def register_records(inner: argparse._SubParsersAction) -> None:
    """Add `records anomalies` to the `records` command's actions."""
    parser = inner.add_parser(
        "anomalies", help="the kept records with the highest anomaly scores, strangest first"
    )
    add_config_options(parser)
    parser.add_argument("--store", help=f"store file (default: paths.store, {DEFAULT_STORE})")
    parser.add_argument("--limit", type=positive_int, default=20, help="how many (default 20)")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(func=_anomalies)


def _run(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.stages.anomaly import run
    from pipeline.stages.summaries import anomaly as summary

    report = run(load_config(args), Path(args.root))
    emit(report, args.json, summary(report))
    return 0


def _short(text: Any, width: int) -> str:
    text = "" if text is None else str(text).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _anomalies(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.store.annotations import SCORE
    from pipeline.store.anomalies import strangest

    store = Path(args.store) if args.store else config_path(args, "paths.store", DEFAULT_STORE)
    found = strangest(store, args.limit)
    lines = [
        f"{r[SCORE]:8.4f}  {r['id']:<14} {_short(r['label'], 12):<12} {_short(r['prompt'], 70)}"
        for r in found
    ]
    emit(found, args.json, "\n".join(lines) or "no kept records")
    return 0
