"""`pipeline stats usage|feedback`: the query-log report and the feedback snapshot."""

from __future__ import annotations

import argparse

from pipeline.commands.erase import erase_wait, waiting
from pipeline.commands.options import add_config_options, positive_int, service_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `stats` to the `pipeline` CLI."""
    s = subparsers.add_parser("stats", help="usage statistics of the search service")
    ssub = s.add_subparsers(dest="stats_command", metavar="REPORT", required=True)
    u = ssub.add_parser(
        "usage", help="queries per day, latency percentiles, zero-result queries, top records"
    )
    add_config_options(u)
    u.add_argument(
        "--top", type=positive_int, default=10, help="rows in each top list (default 10)"
    )
    u.add_argument("--json", action="store_true", help="print JSON")
    u.set_defaults(func=_usage)
    fb = ssub.add_parser(
        "feedback",
        help="snapshot feedback (data/feedback.parquet) and relevance judgments "
        "(data/judgments.parquet) for the dedup and retrieval stages",
        description="Write the mean feedback per record (paths.feedback) that the dedup "
        "stage's keep policy (feedback_desc) and quality fill read, and the graded results "
        "of logged queries (paths.judgments) the retrieval stage evaluates on; `dvc repro` "
        "then re-runs what depends on them.",
    )
    add_config_options(fb)
    fb.add_argument("--json", action="store_true", help="print JSON")
    fb.set_defaults(func=_feedback_snapshot)


def _usage(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.service.querylog import format_usage, usage_report

    report = usage_report(service_config(args).paths.service_db, args.top)
    emit(report, args.json, format_usage(report))
    return 0


def _feedback_snapshot(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.commands.options import load_config
    from pipeline.service.feedback import write_feedback_scores
    from pipeline.service.judgments import write_judgments
    from pipeline.service.writer import writer

    cfg = load_config(args)
    config = service_config(args)
    # The snapshot is published data an erasure rewrites: one writer at a time.
    with writer(config.paths, "pipeline stats feedback", erase_wait(cfg, None), waiting):
        rated = write_feedback_scores(config.paths.service_db, config.paths.feedback)
        judged = write_judgments(config.paths.service_db, config.paths.judgments)
    row = {
        "records_rated": rated,
        "path": str(config.paths.feedback),
        "judged_queries": judged,
        "judgments_path": str(config.paths.judgments),
    }
    text = (
        f"{rated} rated records -> {config.paths.feedback}\n"
        f"{judged} judged queries -> {config.paths.judgments} (run `dvc repro`)"
    )
    emit(row, args.json, text)
    return 0
