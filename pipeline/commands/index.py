"""`pipeline index build|verify` and `pipeline search`. Registration imports nothing heavy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.cli import emit
from pipeline.commands.options import add_config_options, load_config


def register(sub: argparse._SubParsersAction) -> None:
    index = sub.add_parser("index", help="build or verify the vector + keyword index")
    inner = index.add_subparsers(dest="index_command", metavar="ACTION")
    build = inner.add_parser("build", help="embed kept records (cached) and publish data/index")
    add_config_options(build)
    build.add_argument("--json", action="store_true", help="print the stage report as JSON")
    build.set_defaults(func=run_build)
    verify = inner.add_parser(
        "verify", help="check every vector is a kept record and every kept record has one"
    )
    add_config_options(verify)
    verify.add_argument("--json", action="store_true", help="print the findings as JSON")
    verify.set_defaults(func=run_verify)
    index.set_defaults(func=lambda args: index.print_help() or 2)

    search = sub.add_parser(
        "search",
        help="search the kept records (vector, keyword or hybrid)",
        description="Search the kept records. Filters: label, user_id, session_id, origin, "
        "source, tags (contains) with = or !=; quality and created_at also with < <= > >=; "
        "metadata.KEY (compared by the stored type); joined by AND, OR, NOT and parentheses "
        "(docs/search.md).",
    )
    search.add_argument("text", help="what to search for")
    search.add_argument("-k", type=int, default=10, help="number of results (default: 10)")
    search.add_argument(
        "--mode", choices=("vector", "keyword", "hybrid"), default="hybrid", help="ranking"
    )
    search.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="F",
        help='e.g. label=support, quality>=4, metadata.app_version=2.1, "label=a OR label=b", '
        '"NOT origin=synthetic" (repeatable: ANDed)',
    )
    search.add_argument("--session", action="store_true", help="show the other turns of each hit")
    search.add_argument(
        "--diversity", choices=("none", "session", "mmr"),
        help="one hit per conversation (session) or maximal marginal relevance (mmr); "
        "default: search.diversity",
    )  # fmt: skip
    add_config_options(search)
    search.add_argument("--json", action="store_true", help="print results as JSON")
    search.set_defaults(func=run_search)


def run_build(args: argparse.Namespace) -> int:
    from pipeline.stages import summaries
    from pipeline.stages.index import run

    report = run(load_config(args), Path(args.root))
    emit(report, args.json, summaries.index(report))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from pipeline.index.verify import verify_index

    root = Path(args.root)
    paths = load_config(args).paths
    report = verify_index(root / paths.index_dir, root / paths.store)
    if report["ok"]:
        text = (
            f"ok: {report['vectors']} vectors = {report['kept_records']} kept records "
            f"= {report['keyword_docs']} keyword docs"
        )
    else:
        text = "\n".join(f"problem: {p}" for p in report["problems"])
    emit(report, args.json, text)
    return 0 if report["ok"] else 1


def run_search(args: argparse.Namespace) -> int:
    from pipeline.search.api import search

    results = search(
        args.text,
        k=args.k,
        mode=args.mode,
        filters=args.filter,
        with_session=args.session,
        diversity=args.diversity,
        root=args.root,
        params=load_config(args, plain=True),
    )
    as_json = {"query_id": results.query_id, "results": [r.to_dict() for r in results]}
    text = _human(results)
    if results.query_id:  # what `pipeline feedback --query` names to grade these hits
        text += f"\nquery_id: {results.query_id}"
    emit(as_json, args.json, text)
    return 0


def _human(results: list[Any]) -> str:
    if not results:
        return "no results"
    lines = []
    for rank, hit in enumerate(results, start=1):
        scores = "  ".join(
            f"{name} {value:.4f}" for name, value in hit.scores.items() if value is not None
        )
        meta = [
            f"{name}={getattr(hit, name)}"
            for name in ("label", "user_id", "session_id", "origin", "source", "quality")
            if getattr(hit, name) is not None
        ]
        if hit.tags:
            meta.append(f"tags={','.join(hit.tags)}")
        if hit.created_at is not None:
            meta.append(f"created_at={hit.created_at.isoformat()}")
        lines.append(f"{rank:>2}. {hit.id}  [{scores}]")
        lines.append(f"    prompt:   {hit.prompt}")
        if hit.response:
            lines.append(f"    response: {hit.response}")
        if meta:
            lines.append(f"    {'  '.join(meta)}")
        if hit.metadata:
            lines.append(f"    metadata: {hit.metadata}")
        for turn in hit.session or []:
            lines.append(
                f"    turn {turn.get('turn')}: {turn.get('id')}  {turn.get('prompt')!r:.120}"
            )
    return "\n".join(lines)
