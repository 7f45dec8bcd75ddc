"""`pipeline runs` (the leaderboard of tracked model runs) and `pipeline runs compare A B`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.commands.options import add_config_options, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add `runs` and `runs compare` (imports nothing heavy)."""
    parser = sub.add_parser(
        "runs",
        help="leaderboard of the tracked model runs (MLflow), best test macro-F1 first",
        description="The model runs of the MLflow store in `tracking` (params.yaml), best "
        "test macro-F1 first, with the TF-IDF baseline's score on the same split, calibration "
        "(ECE), training time, data hash and whether the registry's `champion` is that run's "
        "model. Run ids may be given by a unique prefix (the table prints 8 characters).",
        epilog="Exit codes: 0 ok, 2 bad input, 3 no tracking store or unknown run.",
    )
    _common(parser)
    parser.add_argument(
        "--data-hash", metavar="H", help="only runs on data whose hash starts with H"
    )
    parser.add_argument("--model", metavar="M", help="only runs of model M (e.g. linear_probe)")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="at most N runs")
    parser.add_argument(
        "--kind", choices=("model", "retrieval"), default="model",
        help="model runs (default), or the retrieval stage's runs: recall and nDCG of "
        "search beside the encoder, fusion and index that made them (docs/retrieval.md)",
    )  # fmt: skip
    parser.set_defaults(func=_leaderboard)
    commands = parser.add_subparsers(dest="runs_command", metavar="{compare}")
    compare = commands.add_parser(
        "compare",
        help="two runs side by side",
        description="Two model runs side by side: the params that differ, every summary "
        "metric (A, B, B - A) and both test confusion matrices.",
        epilog="Exit codes: 0 ok, 2 ambiguous run id, 3 no tracking store or unknown run.",
    )
    _common(compare)
    compare.add_argument("a", metavar="A", help="a run id or a unique prefix of one")
    compare.add_argument("b", metavar="B", help="another run id or prefix")
    compare.set_defaults(func=_compare)


def _common(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")


def _store(args: argparse.Namespace) -> Any:
    from pipeline.commands.options import load_config, params_path
    from pipeline.runs.store import Store

    have_config = args.overrides or params_path(args).exists()
    return Store.open(load_config(args, plain=True) if have_config else None, Path(args.root))


def _leaderboard(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.runs.leaderboard import format_table, leaderboard

    store = _store(args)
    if args.kind == "retrieval":
        from pipeline.runs.retrieval import format_table as retrieval_table
        from pipeline.runs.retrieval import retrieval_runs

        rows = retrieval_runs(store, args.limit)
        emit(rows, args.json, retrieval_table(rows, f"experiment {store.experiment!r}"))
        return 0
    rows = leaderboard(store, args.data_hash, args.model, args.limit)
    emit(rows, args.json, format_table(rows, f"experiment {store.experiment!r}"))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.runs.compare import compare, format_compare

    result = compare(_store(args), args.a, args.b)
    emit(result, args.json, format_compare(result))
    return 0
