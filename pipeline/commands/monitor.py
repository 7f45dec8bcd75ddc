"""`pipeline monitor`: drift of the served model per time window, from the prediction log."""

from __future__ import annotations

import argparse

from pipeline.commands.options import add_config_options

# A drifted window exits with this code: distinct from 1 (the monitor itself failed), so a
# scheduler can tell "alert" from "broken" (docs/monitor.md).
DRIFT_EXIT = 6


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `monitor` to the `pipeline` CLI."""
    m = subparsers.add_parser(
        "monitor",
        help="drift of the served model's inputs and predictions, per time window",
        description="Per window of the prediction log: predicted labels against the training "
        "labels (PSI, chi-square), input embeddings against the training set's (MMD), mean "
        "confidence and live accuracy. Exits 6 when a window drifted (thresholds: "
        "conf/monitor/).",
    )
    add_config_options(m)
    m.add_argument("--window", help="window length, e.g. 15m, 1h, 1d (default monitor.window)")
    m.add_argument(
        "--since", help="an ISO time or a duration back from now (default: 24 windows back)"
    )
    m.add_argument("--until", help="an ISO time: report windows before it (default: now)")
    m.add_argument("--json", action="store_true", help="print JSON")
    m.set_defaults(func=_monitor)


def _monitor(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.monitor.report import DRIFT, format_report, parse_since
    from pipeline.monitor.settings import parse_duration

    if args.window:
        parse_duration(args.window, "--window")  # before any file is read
    since = parse_since(args.since) if args.since else None
    until = parse_since(args.until) if args.until else None
    report = run_report(args, since, until)
    emit(report, args.json, format_report(report))
    return DRIFT_EXIT if report["status"] == DRIFT else 0


def run_report(args: argparse.Namespace, since: object, until: object) -> dict:
    """The monitor report for the command's config."""
    from pathlib import Path

    from pipeline.commands.options import load_config
    from pipeline.monitor.reference import load_reference
    from pipeline.monitor.report import monitor_report
    from pipeline.monitor.settings import MonitorSettings

    cfg = load_config(args, plain=True)
    root, paths = Path(args.root), cfg.get("paths", {})
    settings = MonitorSettings.from_cfg(cfg.get("monitor"))
    reference = load_reference(
        root / paths.get("records", "data/dedup/records.parquet"),
        settings,
        cfg.get("embed"),
        root / paths.get("embed_cache", "data/cache/embeddings"),
    )
    service_db = root / paths.get("service_db", "data/service.duckdb")
    return monitor_report(service_db, reference, settings, args.window, since, until)
