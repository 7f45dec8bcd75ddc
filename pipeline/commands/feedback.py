"""`pipeline feedback`: score a record as a writer key, inside the key's scope."""

from __future__ import annotations

import argparse
import os

from pipeline.commands.options import add_config_options, service_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `feedback` to the `pipeline` CLI."""
    f = subparsers.add_parser(
        "feedback", help="score a record (1-5, up or down) as a writer key",
        description="Store feedback on a record with the identity of a writer (or admin) "
        "key, read from --key or the PIPELINE_API_KEY environment variable.",
    )  # fmt: skip
    add_config_options(f)
    f.add_argument("record_id", help="the record's id (or rid)")
    signal = f.add_mutually_exclusive_group(required=True)
    signal.add_argument("--score", type=float, help="1 (bad) to 5 (good)")
    signal.add_argument("--up", action="store_true", help="thumbs up")
    signal.add_argument("--down", action="store_true", help="thumbs down")
    f.add_argument("--comment", help="a free-text comment")
    f.add_argument("--key", help="API key (default $PIPELINE_API_KEY)")
    f.add_argument("--json", action="store_true", help="print JSON")
    f.set_defaults(func=_feedback)


def _feedback(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.service.feedback import give_feedback
    from pipeline.service.keys import KeyCache
    from pipeline.store.lookup import StoreReader

    config = service_config(args)
    principal = KeyCache(config.paths.service_db).authenticate(
        args.key or os.environ.get("PIPELINE_API_KEY")
    )
    kind = "up" if args.up else "down" if args.down else "score"
    reader = StoreReader(config.paths.store)
    try:
        row = give_feedback(
            config.paths.service_db, reader, principal, args.record_id, kind, args.score,
            args.comment,
        )  # fmt: skip
    finally:
        reader.close()
    emit(row, args.json, f"feedback {row['feedback_id']} on {row['record_id']}: {kind}")
    return 0
