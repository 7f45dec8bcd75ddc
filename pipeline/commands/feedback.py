"""`pipeline feedback`: score a record as a writer key, inside the key's scope."""

from __future__ import annotations

import argparse
import os
from typing import Any

from pipeline.commands.options import add_config_options, service_config
from pipeline.errors import UserInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `feedback` to the `pipeline` CLI."""
    f = subparsers.add_parser(
        "feedback", help="score a record (1-5, up, down) or grade a search result, as a writer key",
        description="Store feedback on a record with the identity of a writer (or admin) "
        "key, read from --key or the PIPELINE_API_KEY environment variable.",
    )  # fmt: skip
    add_config_options(f)
    f.add_argument("record_id", help="the record's id (or rid)")
    signal = f.add_mutually_exclusive_group(required=True)
    signal.add_argument("--score", type=float, help="1 (bad) to 5 (good)")
    signal.add_argument("--up", action="store_true", help="thumbs up")
    signal.add_argument("--down", action="store_true", help="thumbs down")
    signal.add_argument(
        "--grade", type=int, metavar="0-3",
        help="relevance of the record to the search --query names: 0 not relevant, "
        "1 marginal, 2 relevant, 3 highly relevant",
    )  # fmt: skip
    f.add_argument("--query", metavar="QUERY_ID", help="the query_id of a search (with --grade)")
    f.add_argument("--comment", help="a free-text comment")
    f.add_argument("--key", help="API key (default $PIPELINE_API_KEY)")
    f.add_argument("--json", action="store_true", help="print JSON")
    f.set_defaults(func=_feedback)


def _feedback(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.service.feedback import give_feedback
    from pipeline.service.keys import KeyCache
    from pipeline.store.lookup import StoreReader

    if (args.grade is None) != (args.query is None):
        raise UserInputError("--grade and --query go together: grade a result of that search")
    config = service_config(args)
    principal = KeyCache(config.paths.service_db).authenticate(
        args.key or os.environ.get("PIPELINE_API_KEY")
    )
    kind = "up" if args.up else "down" if args.down else "score"
    reader = StoreReader(config.paths.store)
    try:
        if args.query is not None:
            return _judge(args, config, reader, principal)
        row = give_feedback(
            config.paths.service_db, reader, principal, args.record_id, kind, args.score,
            args.comment,
        )  # fmt: skip
    finally:
        reader.close()
    emit(row, args.json, f"feedback {row['feedback_id']} on {row['record_id']}: {kind}")
    return 0


def _judge(args: argparse.Namespace, config: Any, reader: Any, principal: Any) -> int:
    from pipeline.cli import emit
    from pipeline.service.judgments import judge

    (row,) = judge(
        config.paths.service_db, reader, principal, args.query, [(args.record_id, args.grade)]
    )
    emit(row, args.json, f"judgment {row['judgment_id']}: {row['record_id']} graded "
         f"{row['grade']} for query {row['query_id']}")  # fmt: skip
    return 0
